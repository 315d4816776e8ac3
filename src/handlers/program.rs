//! The program an `exec` handler runs: found before any task (a relative
//! path against the config file's directory, a bare name through `PATH`),
//! so that a missing or non-executable program stops the start with the
//! handler's name; and, once running, the programs that went missing since,
//! which `/ready` reports until they are back.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::fs::Access;

/// Why a program cannot be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramError {
    /// No file at this path.
    Missing(PathBuf),
    /// A bare name that no directory of `PATH` holds as an executable file.
    NotInPath(String),
    /// The path names a directory or another file that is not a regular one.
    NotAFile(PathBuf),
    /// The file is there but this user may not execute it.
    NotExecutable(PathBuf),
}

impl std::fmt::Display for ProgramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProgramError::Missing(p) => write!(f, "program {} not found", p.display()),
            ProgramError::NotInPath(name) => {
                write!(f, "program {name:?} not found in any directory of PATH")
            }
            ProgramError::NotAFile(p) => write!(f, "program {} is not a file", p.display()),
            ProgramError::NotExecutable(p) => {
                write!(f, "program {} is not executable", p.display())
            }
        }
    }
}

impl std::error::Error for ProgramError {}

/// `program` as the handler runs it: a path with a slash is made absolute
/// against `base_dir` (the config file's directory; the working directory
/// when `None`); a bare name stays bare, for `PATH` to find at each start.
pub fn absolute(program: &Path, base_dir: Option<&Path>) -> std::io::Result<PathBuf> {
    if !program.is_relative() || program.components().count() < 2 {
        return Ok(program.to_path_buf());
    }
    match base_dir {
        Some(dir) => Ok(dir.join(program)),
        None => std::path::absolute(program),
    }
}

/// Checks that `program` (as [`absolute`] left it) can be run: a path must
/// be an executable file; a bare name must be one in a directory of
/// `path_var` (the `PATH` the child gets).
pub fn check(program: &Path, path_var: Option<&OsStr>) -> Result<(), ProgramError> {
    if program.components().count() > 1 || program.is_absolute() {
        return check_file(program);
    }
    let name = program.to_string_lossy().into_owned();
    let dirs = path_var.map(std::env::split_paths).into_iter().flatten();
    for dir in dirs.filter(|d| !d.as_os_str().is_empty()) {
        if check_file(&dir.join(program)).is_ok() {
            return Ok(());
        }
    }
    Err(ProgramError::NotInPath(name))
}

fn check_file(path: &Path) -> Result<(), ProgramError> {
    match std::fs::metadata(path) {
        Err(_) => Err(ProgramError::Missing(path.to_path_buf())),
        Ok(meta) if !meta.is_file() => Err(ProgramError::NotAFile(path.to_path_buf())),
        // The kernel's own answer for this user, ACLs and all.
        Ok(_) => rustix::fs::access(path, Access::EXEC_OK)
            .map_err(|_| ProgramError::NotExecutable(path.to_path_buf())),
    }
}

/// The `PATH` a child started with `env` (the handler's `env` option) gets.
pub fn path_var(env: &[(String, String)]) -> Option<OsString> {
    match env.iter().rev().find(|(name, _)| name == "PATH") {
        Some((_, value)) => Some(value.into()),
        None => std::env::var_os("PATH"),
    }
}

#[derive(Debug, Clone)]
struct Missing {
    program: PathBuf,
    path_var: Option<OsString>,
    problem: ProgramError,
}

/// The programs that could not be started since the worker began, by the
/// handler's key (`handlers.send.email.exec`), shared by every exec handler
/// of a worker and by `/ready`. A program counts as back as soon as it can
/// be run again: when a task starts it, or when `/ready` looks.
#[derive(Debug, Clone, Default)]
pub struct MissingPrograms(Arc<Mutex<BTreeMap<String, Missing>>>);

impl MissingPrograms {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Missing>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that the handler `key` could not start its program; logs
    /// once, when it goes missing.
    pub(crate) fn lost(
        &self,
        key: &str,
        program: &Path,
        path_var: Option<OsString>,
        problem: ProgramError,
    ) {
        let missing = Missing {
            program: program.to_path_buf(),
            path_var,
            problem,
        };
        let problem = missing.problem.to_string();
        if self.lock().insert(key.to_string(), missing).is_none() {
            log::error!(
                "{key}: {problem}; its tasks fail (retryable) and /ready answers 503 until it is back"
            );
        }
    }

    /// Records that the handler `key` started its program.
    pub(crate) fn found(&self, key: &str) {
        let mut missing = self.lock();
        if missing.is_empty() {
            return;
        }
        if missing.remove(key).is_some() {
            log::info!("{key}: program is back");
        }
    }

    /// Why the worker cannot run some handler's tasks now, naming the first
    /// one whose program is still missing; those back since are forgotten.
    pub fn problem(&self) -> Option<String> {
        let mut missing = self.lock();
        missing.retain(|key, m| {
            let back = check(&m.program, m.path_var.as_deref()).is_ok();
            if back {
                log::info!("{key}: program is back");
            }
            !back
        });
        missing
            .iter()
            .next()
            .map(|(key, m)| format!("{key}: {}", m.problem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fresh directory holding one script, `prog`, with permission `mode`.
    fn dir_with_program(name: &str, mode: u32) -> (PathBuf, PathBuf) {
        let dir = crate::test_path(&format!("program-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let prog = dir.join("prog");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, prog)
    }

    #[test]
    fn relative_paths_resolve_against_the_base_and_bare_names_stay_bare() {
        let base = Some(Path::new("/etc/taskworker"));
        for (program, resolved) in [
            ("handlers/send", "/etc/taskworker/handlers/send"),
            ("./send", "/etc/taskworker/./send"),
            ("/usr/bin/x", "/usr/bin/x"),
            ("convert", "convert"),
        ] {
            assert_eq!(
                absolute(Path::new(program), base).unwrap(),
                Path::new(resolved)
            );
        }
        assert!(absolute(Path::new("bin/x"), None).unwrap().is_absolute());
    }

    #[test]
    fn finds_executables_and_names_what_is_wrong() {
        let (dir, script) = dir_with_program("check", 0o644);
        assert_eq!(
            check(&script, None),
            Err(ProgramError::NotExecutable(script.clone()))
        );
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(check(&script, None), Ok(()));
        assert_eq!(check(&dir, None), Err(ProgramError::NotAFile(dir.clone())));
        let gone = dir.join("gone");
        assert_eq!(check(&gone, None), Err(ProgramError::Missing(gone.clone())));

        let path = std::env::join_paths([Path::new("/nonexistent"), &dir]).unwrap();
        assert_eq!(check(Path::new("prog"), Some(&path)), Ok(()));
        assert_eq!(
            check(Path::new("gone"), Some(&path)),
            Err(ProgramError::NotInPath("gone".into()))
        );
        assert!(check(Path::new("prog"), None).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_missing_program_is_forgotten_once_it_is_back() {
        let (dir, prog) = dir_with_program("missing", 0o600);
        let missing = MissingPrograms::default();
        assert_eq!(missing.problem(), None);
        let lose = || {
            let problem = ProgramError::NotExecutable(prog.clone());
            missing.lost("handlers.x.exec", &prog, None, problem)
        };
        lose();
        let problem = missing.problem().unwrap();
        assert!(
            problem.starts_with("handlers.x.exec: program "),
            "{problem}"
        );
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(missing.problem(), None);
        lose();
        missing.found("handlers.x.exec");
        assert!(missing.lock().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
