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

    /// Whether the session's pane process has exited (`None`: no such session). Asked through
    /// the fleet query: `display-message` on a missing target prints nothing and succeeds.
    pub fn pane_dead(&self, name: &str) -> Result<Option<bool>, TmuxError> {
        Ok(self.at(name).fleet_here()?.get(name).map(|p| p.dead))
    }

    /// The pane's whole history and screen (`capture-pane -p -S -`), trailing blank lines kept.
    pub fn capture_history(&self, name: &str) -> Result<String, TmuxError> {
        let cmd = Cmdline::new("capture-pane", pane_target(name))
            .args(["-p", "-J", "-S", "-", "-t"])
            .arg(pane_target(name));
        Ok(self.run(cmd, name, None)?.stdout)
    }
}
