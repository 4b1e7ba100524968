//! The console's tmux calls: handing the terminal to a session (`attach-session`, or
//! `switch-client` from a client of the same server) and the pane's screen with its colours.
use std::process::Command as Process;

use super::exec::Cmdline;
use super::{Tmux, TmuxError, pane_target, session_target};

/// How to bring a session to the user's terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMove {
    /// Not inside this server: `attach-session` (the terminal is handed over until detach).
    Attach,
    /// Inside a client of this server: `switch-client` (returns at once).
    Switch,
}

/// Whether `$TMUX` (`<socket path>,<pid>,<session index>`) names the server at `socket_path`.
pub fn inside_server(tmux_env: Option<&str>, socket_path: &str) -> bool {
    tmux_env
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| !p.is_empty() && p == socket_path)
}

impl Tmux {
    /// The socket path of this server, asked through the session `name` (which must exist).
    pub fn socket_path(&self, name: &str) -> Result<String, TmuxError> {
        let cmd = Cmdline::new("display-message", pane_target(name))
            .args(["-p", "-t"])
            .arg(pane_target(name))
            .args(["--", "#{socket_path}"]);
        Ok(self.run(cmd, name, None)?.stdout.trim_end().to_string())
    }

    /// The visible screen of the session's pane with its SGR colour escapes (`capture-pane -e`).
    pub fn capture_styled(&self, name: &str) -> Result<String, TmuxError> {
        let cmd = Cmdline::new("capture-pane", pane_target(name))
            .args(["-p", "-e", "-t"])
            .arg(pane_target(name));
        Ok(self.run(cmd, name, None)?.stdout)
    }

    /// Attach when the caller is not in a client of this server, else switch; `tmux_env` is
    /// the caller's `$TMUX`.
    pub fn client_move(&self, name: &str, tmux_env: Option<&str>) -> Result<ClientMove, TmuxError> {
        if tmux_env.is_none_or(str::is_empty) {
            return Ok(ClientMove::Attach);
        }
        let path = self.socket_path(name)?;
        Ok(if inside_server(tmux_env, &path) {
            ClientMove::Switch
        } else {
            ClientMove::Attach
        })
    }

    /// The tmux client process that brings session `name` (exactly) to this terminal, with the
    /// terminal inherited and no timeout: the caller waits for it. An attach drops `$TMUX` (a
    /// client nested in another server's pane); a switch keeps it (it names the client).
    pub fn client_process(&self, name: &str, how: ClientMove) -> Process {
        let mut p = Process::new(&self.binary);
        if let Some(socket) = &self.socket {
            p.arg("-L").arg(socket);
        }
        match how {
            ClientMove::Attach => {
                p.args(["attach-session", "-t"])
                    .arg(session_target(name))
                    .env_remove("TMUX")
                    .env_remove("TMUX_PANE");
            }
            ClientMove::Switch => {
                p.args(["switch-client", "-t"]).arg(session_target(name));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmux_env_names_the_server_by_its_socket_path() {
        let path = "/tmp/tmux-0/orch-x";
        assert!(inside_server(Some("/tmp/tmux-0/orch-x,4242,3"), path));
        assert!(!inside_server(Some("/tmp/tmux-0/default,4242,3"), path));
        assert!(!inside_server(Some(""), path));
        assert!(!inside_server(None, path));
    }

    #[test]
    fn attach_targets_the_exact_session_and_drops_tmux() {
        let t = Tmux::new(Some("s".into()));
        let p = t.client_process("prob", ClientMove::Attach);
        let args: Vec<_> = p
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["-L", "s", "attach-session", "-t", "=prob"]);
        assert!(p.get_envs().any(|(k, v)| k == "TMUX" && v.is_none()));
        let p = t.client_process("prob", ClientMove::Switch);
        let args: Vec<_> = p
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["-L", "s", "switch-client", "-t", "=prob"]);
    }
}
