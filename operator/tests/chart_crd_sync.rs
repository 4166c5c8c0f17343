//! The Helm chart ships its own copy of the CRD (Helm installs CRDs only from a chart's `crds/`
//! folder). It must be byte-for-byte the generated one under the repository's `crds/`.

use std::path::PathBuf;

const CRD_FILES: [&str; 2] = [
    "insynccloudbackups.insync.dev.yaml",
    "insyncclouds.insync.dev.yaml",
];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn chart_crd_is_identical_to_generated_crd() {
    for file in CRD_FILES {
        let generated = read(&format!("crds/{file}"));
        let in_chart = read(&format!("charts/insync-operator/crds/{file}"));
        assert!(
            generated == in_chart,
            "charts/insync-operator/crds/{file} differs from crds/{file}; run charts/sync-crds.sh and commit the result"
        );
    }
}

#[test]
fn chart_crd_folder_holds_only_the_crds() {
    let dir = repo_root().join("charts/insync-operator/crds");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, CRD_FILES, "unexpected files in {}", dir.display());
}
