//! secrets: an agent's `secrets_dir` read into environment variables (one regular, non-hidden
//! file = one variable, trailing newline trimmed); the privacy check; merging under `env`.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A secrets folder that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read secrets_dir {path:?}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "secrets_dir {path:?} is readable by group or others (mode {mode:04o}); run `chmod 700 {}`",
        shell_words::quote(&path.display().to_string())
    )]
    NotPrivate { path: PathBuf, mode: u32 },
    #[error("secrets_dir {path:?}: file {name:?} is not a valid environment variable name")]
    BadName { path: PathBuf, name: String },
}

/// The folder exists, is a folder, and no group/other permission bits allow reading it.
pub fn check_dir(dir: &Path) -> Result<(), SecretsError> {
    let meta = std::fs::metadata(dir).map_err(|source| SecretsError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(SecretsError::Read {
            path: dir.to_path_buf(),
            source: std::io::Error::other("not a directory"),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o044 != 0 {
        return Err(SecretsError::NotPrivate {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Every secret in `dir` as `(NAME, value)`, sorted by name. The folder is checked private
/// first; hidden files, folders and other non-regular files are skipped.
pub fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, SecretsError> {
    check_dir(dir)?;
    let read_err = |source| SecretsError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // file_type() does not follow symlinks: a link is not a regular file, skipped.
        if name.starts_with('.') || !entry.file_type().map_err(read_err)?.is_file() {
            continue;
        }
        if !valid_name(&name) {
            return Err(SecretsError::BadName {
                path: dir.to_path_buf(),
                name,
            });
        }
        let bytes = std::fs::read(entry.path()).map_err(read_err)?;
        let text = String::from_utf8_lossy(&bytes);
        let value = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        out.push((name, value.to_string()));
    }
    out.sort();
    Ok(out)
}

/// A name a shell and tmux accept: letters, digits, `_`, not starting with a digit.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Put `secrets` under `env`: a variable already in `env` (identity or the `env` table) wins.
pub fn merge_under(env: &mut Vec<(String, String)>, secrets: Vec<(String, String)>) {
    let mut merged: Vec<(String, String)> = secrets
        .into_iter()
        .filter(|(k, _)| !env.iter().any(|(e, _)| e == k))
        .collect();
    merged.append(env);
    *env = merged;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        d
    }

    #[test]
    fn each_regular_visible_file_is_a_variable_with_its_newline_trimmed() {
        let d = private_dir();
        std::fs::write(d.path().join("API_KEY"), "s3cret\n").unwrap();
        std::fs::write(d.path().join("TWO_LINES"), "a\nb\n\n").unwrap();
        std::fs::write(d.path().join(".hidden"), "x").unwrap();
        std::fs::create_dir(d.path().join("SUB")).unwrap();
        let got = read_dir(d.path()).unwrap();
        assert_eq!(
            got,
            [
                ("API_KEY".to_string(), "s3cret".to_string()),
                ("TWO_LINES".to_string(), "a\nb\n".to_string())
            ]
        );
    }

    #[test]
    fn a_dir_readable_by_others_is_refused_naming_it() {
        let d = private_dir();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = read_dir(d.path()).unwrap_err().to_string();
        assert!(err.contains(&d.path().display().to_string()), "{err}");
        assert!(err.contains("readable by group or others"), "{err}");
        assert!(!err.contains("s3cret"));
    }

    #[test]
    fn a_file_name_that_is_no_variable_name_is_an_error() {
        let d = private_dir();
        std::fs::write(d.path().join("my-key"), "v").unwrap();
        assert!(matches!(
            read_dir(d.path()),
            Err(SecretsError::BadName { .. })
        ));
    }

    #[test]
    fn env_values_win_over_secrets() {
        let mut env = vec![("A".to_string(), "from-env".to_string())];
        merge_under(
            &mut env,
            vec![
                ("A".to_string(), "secret".to_string()),
                ("B".to_string(), "b".to_string()),
            ],
        );
        assert_eq!(
            env,
            [
                ("B".to_string(), "b".to_string()),
                ("A".to_string(), "from-env".to_string())
            ]
        );
    }
}
