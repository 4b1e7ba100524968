//! The console's terminal: raw mode and the alternate screen while it runs, restored on every
//! way out (return, error, panic, SIGTERM/SIGHUP/SIGINT) and around an attach or a pager.
use std::io::{self, Stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::{cursor, execute, terminal};

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Set by the signal handler; the loop sees it within one poll and leaves cleanly.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// Whether SIGTERM, SIGHUP or SIGINT arrived.
pub fn signalled() -> bool {
    SIGNALLED.load(Ordering::SeqCst)
}

/// Put the terminal back: cooked mode, main screen, cursor shown. Safe to call twice.
pub fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
}

/// Raw mode and the alternate screen; the panic hook and signal handlers restore them.
pub fn enter() -> io::Result<Term> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT] {
            // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
            unsafe {
                libc::signal(sig, handler);
            }
        }
    });
    resume()?;
    Terminal::new(CrosstermBackend::new(io::stdout()))
}

/// Re-enter raw mode and the alternate screen (after an attach or a pager).
pub fn resume() -> io::Result<()> {
    terminal::enable_raw_mode()?;
    execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)
}

/// Restores the terminal when dropped (the normal and the error return).
pub struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// What waiting on the terminal gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    Ready,
    Timeout,
    /// The terminal hung up (its pty closed with its tmux server or window). crossterm would
    /// spin reading its end of file forever, so the console must stop instead.
    HungUp,
}

/// Waits up to `wait` for input on the terminal, without crossterm (see [`Input::HungUp`]).
pub fn wait_input(wait: std::time::Duration) -> Input {
    let mut fds = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut fds, 1, ms) };
    if n > 0 && fds.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        Input::HungUp
    } else if n > 0 {
        Input::Ready
    } else {
        Input::Timeout
    }
}
