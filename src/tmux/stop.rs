//! The tmux calls a graceful stop needs: keep a pane after its process exits, read whether it
//! has exited, and capture its whole scrollback history.
use super::exec::Cmdline;
use super::{Tmux, TmuxError, pane_target};

impl Tmux {
    /// Keep the session's pane (dead) after its process exits (`remain-on-exit on`).
    pub fn set_remain_on_exit(&self, name: &str) -> Result<(), TmuxError> {
        let cmd = Cmdline::new("set-option", pane_target(name))
            .arg("-t")
            .arg(pane_target(name))
            .args(["remain-on-exit", "on"]);
        self.run(cmd, name, None).map(drop)
    }

    /// Whether the session's pane process has exited (`None`: no such session).
    pub fn pane_dead(&self, name: &str) -> Result<Option<bool>, TmuxError> {
        match self.display(name, "#{pane_dead}") {
            Ok(text) => Ok(Some(text.trim() == "1")),
            Err(TmuxError::NoSession { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The pane's whole history and screen (`capture-pane -p -S -`), trailing blank lines kept.
    pub fn capture_history(&self, name: &str) -> Result<String, TmuxError> {
        let cmd = Cmdline::new("capture-pane", pane_target(name))
            .args(["-p", "-J", "-S", "-", "-t"])
            .arg(pane_target(name));
        Ok(self.run(cmd, name, None)?.stdout)
    }
}
