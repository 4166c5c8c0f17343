//! The init containers of a Job's pod, built from the shapes every container shares (ports,
//! mounts, probes in [`super::pod`]): the steps that run to completion before the main container
//! (a dump, a fetch, a load) and the native sidecars that run beside it (a verification's
//! throwaway datastores). [`super::pod::PodBuilder`] hardens each one as it does the main
//! container (security context, pull policy, resources, writable `/tmp`).

use k8s_openapi::api::core::v1::{Container, EnvVar, Probe, Volume};

use super::pod::{Check, InitContainer, empty_dir, probe_every, tcp_port, volume_mount};

/// Builds one init container.
pub(super) struct ContainerBuilder {
    container: Container,
    run_as: Option<i64>,
    volumes: Vec<Volume>,
}

impl ContainerBuilder {
    /// A step: runs to completion before the next container starts. Its last words (its error,
    /// or its report) are its termination message, which the controller reads.
    pub(crate) fn step(name: &str, image: String) -> Self {
        let mut step = Self::new(name, image);
        step.container.termination_message_policy = Some("FallbackToLogsOnError".to_owned());
        step
    }

    /// A native sidecar (`restartPolicy: Always`): started before the next init container (once
    /// its startup probe passed), running beside the main container, and stopped by the kubelet
    /// when the main container exits.
    pub(crate) fn sidecar(name: &str, image: String) -> Self {
        let mut sidecar = Self::new(name, image);
        sidecar.container.restart_policy = Some("Always".to_owned());
        sidecar
    }

    fn new(name: &str, image: String) -> Self {
        Self {
            container: Container {
                name: name.to_owned(),
                image: Some(image),
                ..Container::default()
            },
            run_as: None,
            volumes: Vec::new(),
        }
    }

    /// The command (the image's entrypoint is replaced).
    pub(crate) fn command<I: IntoIterator<Item = String>>(mut self, command: I) -> Self {
        self.container.command = Some(command.into_iter().collect());
        self
    }

    /// Runs `script` with `sh -c`.
    pub(crate) fn script(self, script: String) -> Self {
        self.command(["sh".to_owned(), "-c".to_owned(), script])
    }

    pub(crate) fn args<I: IntoIterator<Item = String>>(mut self, args: I) -> Self {
        self.container.args = Some(args.into_iter().collect());
        self
    }

    pub(crate) fn env<I: IntoIterator<Item = EnvVar>>(mut self, env: I) -> Self {
        self.container.env.get_or_insert_with(Vec::new).extend(env);
        self
    }

    /// Listens on TCP `port` (unnamed), and counts as started once it accepts connections:
    /// checked every 2 s for up to 5 minutes (MySQL initialises its data directory first).
    pub(crate) fn listens_on(self, port: i32) -> Self {
        self.started_by(port, Check::TcpPort(port))
    }

    /// Listens on `port` of 127.0.0.1 only, and counts as started once `check` (a command in
    /// the container) succeeds: checked like [`Self::listens_on`].
    pub(crate) fn listens_locally(self, port: i32, check: &'static [&'static str]) -> Self {
        self.started_by(port, Check::Exec(check))
    }

    /// Declares `port` and the startup probe `check`, every 2 s for up to 5 minutes.
    fn started_by(mut self, port: i32, check: Check) -> Self {
        self.container
            .ports
            .get_or_insert_with(Vec::new)
            .push(tcp_port(None, port));
        self.container.startup_probe = Some(Probe {
            failure_threshold: Some(150),
            ..probe_every(check, 2)
        });
        self
    }

    /// Mounts a new emptyDir `volume` at `path`: scratch space of this container's own.
    pub(crate) fn scratch(mut self, volume: &str, path: &str) -> Self {
        self.container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(volume_mount(volume, path));
        self.volumes.push(empty_dir(volume.to_owned()));
        self
    }

    /// Runs as the image's own user and group `uid` instead of the pod's.
    pub(crate) fn run_as(mut self, uid: i64) -> Self {
        self.run_as = Some(uid);
        self
    }

    pub(crate) fn build(self) -> InitContainer {
        InitContainer {
            container: self.container,
            run_as: self.run_as,
            volumes: self.volumes,
        }
    }
}
