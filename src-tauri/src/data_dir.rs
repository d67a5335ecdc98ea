//! The app's data folder: created on first start, private to the user.

use std::io;
use std::path::Path;

/// Creates `dir` (and parents) if missing and makes it private to the user:
/// session stores of linked devices will live below it.
pub fn prepare(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_private_folder() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("a").join("b");
        prepare(&dir).expect("prepare");
        assert!(dir.is_dir());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn accepts_an_existing_folder() {
        let root = tempfile::tempdir().expect("tempdir");
        prepare(root.path()).expect("first");
        prepare(root.path()).expect("second");
    }
}
