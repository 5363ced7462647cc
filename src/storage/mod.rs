//! Blob storage. This module owns bytes, never tracks. The full `BlobStore` (streaming put,
//! ranged get, S3 backend) lands with the library; today it prepares and probes the local root.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Errors from the blob store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The local filesystem store rooted at one directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Creates the root directory (and parents) if needed.
    pub fn open(root: &Path) -> Result<LocalStore, StoreError> {
        std::fs::create_dir_all(root).map_err(|source| StoreError::Io {
            op: "create",
            path: root.to_owned(),
            source,
        })?;
        Ok(LocalStore {
            root: root.to_owned(),
        })
    }

    /// Root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Proves the store is writable: create, fsync and remove a probe file.
    pub fn probe_writable(&self) -> Result<(), StoreError> {
        let path = self
            .root
            .join(format!(".probe-{}", uuid::Uuid::new_v4().simple()));
        let io = |op, source| StoreError::Io {
            op,
            path: path.clone(),
            source,
        };
        let mut f = std::fs::File::create(&path).map_err(|e| io("create", e))?;
        let res = f
            .write_all(b"veza")
            .and_then(|()| f.sync_all())
            .map_err(|e| io("write", e));
        drop(f);
        let rm = std::fs::remove_file(&path).map_err(|e| io("remove", e));
        res.and(rm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::open(&dir.path().join("blobs")).unwrap();
        s.probe_writable().unwrap();
        assert_eq!(std::fs::read_dir(s.root()).unwrap().count(), 0);
    }

    #[test]
    fn probe_fails_when_the_root_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::open(&dir.path().join("blobs")).unwrap();
        std::fs::remove_dir(s.root()).unwrap();
        assert!(s.probe_writable().is_err());
    }
}
