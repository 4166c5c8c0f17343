//! The DNS-cleanup finalizer, added and removed without touching anyone else's finalizers.
//!
//! A JSON patch that edits one list element, guarded by a `test` op, rather than:
//! - a merge patch, which replaces the whole list (another controller's finalizer written
//!   between our read and our write, or simply present, was dropped: issue 10);
//! - server-side apply of the list under a finalizer field manager, which adds fine but removes
//!   only what that manager alone owns: a finalizer that an earlier version of the operator
//!   added with an update (owned by a different manager), or that anyone else also listed, would
//!   stay forever and the cloud could never be deleted.
//!
//! The `test` op makes the write conditional on exactly the state it was computed from (the
//! list, or the element at the index we remove), not on the whole object's resourceVersion,
//! which every status write changes. When someone else changed the list in between, the API
//! server refuses the patch and the reconcile is retried against the fresh object.

use json_patch::Patch;
use serde_json::{Value, json};

fn patch(ops: Value) -> Patch {
    // The ops are literals of the JSON patch grammar: they always deserialize.
    serde_json::from_value(ops).unwrap_or_else(|_| Patch(Vec::new()))
}

/// The patch that appends `name` to `current` (the object's finalizers as read), or `None`
/// when it is already there.
pub(crate) fn add(current: &[String], name: &str) -> Option<Patch> {
    if current.iter().any(|f| f == name) {
        return None;
    }
    Some(patch(if current.is_empty() {
        // An empty list is absent from the object: test for that, then create the list.
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [name]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": name},
        ])
    }))
}

/// The patch that removes `name` from `current` and nothing else, or `None` when it is not
/// there.
pub(crate) fn remove(current: &[String], name: &str) -> Option<Patch> {
    let index = current.iter().position(|f| f == name)?;
    let path = format!("/metadata/finalizers/{index}");
    Some(patch(json!([
        {"op": "test", "path": path, "value": name},
        {"op": "remove", "path": path},
    ])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OURS: &str = "insync.dev/dns-cleanup";
    const THEIRS: &str = "example.com/keep-me";

    fn cloud(finalizers: &[&str]) -> Value {
        json!({"metadata": {"name": "fcloud", "finalizers": finalizers}})
    }

    fn finalizers(object: &Value) -> Vec<String> {
        serde_json::from_value(object["metadata"]["finalizers"].clone()).unwrap_or_default()
    }

    #[test]
    fn adding_ours_keeps_theirs() {
        let mut object = cloud(&[THEIRS]);
        let patch = add(&finalizers(&object), OURS).expect("a patch");
        json_patch::patch(&mut object, &patch).expect("applies");
        assert_eq!(finalizers(&object), [THEIRS, OURS]);
        assert!(add(&finalizers(&object), OURS).is_none(), "already there");
    }

    #[test]
    fn adding_to_no_finalizers_creates_the_list() {
        let patch = add(&[], OURS).expect("a patch");
        let ops = serde_json::to_value(&patch).expect("serializes");
        assert_eq!(
            ops,
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [OURS]},
            ])
        );
    }

    #[test]
    fn removing_ours_keeps_theirs() {
        for start in [[OURS, THEIRS], [THEIRS, OURS]] {
            let mut object = cloud(&start);
            let patch = remove(&finalizers(&object), OURS).expect("a patch");
            json_patch::patch(&mut object, &patch).expect("applies");
            assert_eq!(finalizers(&object), [THEIRS]);
        }
        assert!(remove(&[THEIRS.to_owned()], OURS).is_none());
    }

    #[test]
    fn a_list_changed_since_it_was_read_refuses_the_patch() {
        // Read [theirs]; meanwhile someone added a third finalizer.
        let read = vec![THEIRS.to_owned()];
        let mut now = cloud(&[THEIRS, "example.com/other"]);
        let patch = add(&read, OURS).expect("a patch");
        assert!(json_patch::patch(&mut now, &patch).is_err());
        // Read [theirs, ours]; meanwhile the list became [new, theirs]: index 1 is no longer
        // ours, and the test op refuses instead of removing theirs.
        let read = vec![THEIRS.to_owned(), OURS.to_owned()];
        let mut now = cloud(&["example.com/new", THEIRS]);
        let patch = remove(&read, OURS).expect("a patch");
        assert!(json_patch::patch(&mut now, &patch).is_err());
        assert_eq!(finalizers(&now), ["example.com/new", THEIRS]);
    }
}
