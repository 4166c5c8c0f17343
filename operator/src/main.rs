fn main() {
    use kube::CustomResourceExt;
    print!("{}", serde_yaml::to_string(&insync_operator::api::InSyncCloud::crd()).unwrap_or_default());
}
