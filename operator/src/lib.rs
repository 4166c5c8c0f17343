//! insync-operator: runs an inSync Cloud from one `InSyncCloud` custom resource.
