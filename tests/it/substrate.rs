//! The substrate: the watchdog outlives the agents' tmux server, survives SIGKILLs without
//! losing or repeating a ping, keeps secrets out of log_dir, and reaps leaked sessions.
mod empty_remote;
mod gc;
mod keepalive;
mod secrets;
mod server_lost;
