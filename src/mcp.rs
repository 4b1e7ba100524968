//! `orch mcp`: an MCP server on stdio (the official SDK, rmcp) so an orchestrator agent can
//! drive orch: run_task, get_job, list_jobs, cancel_job, list_profiles, fleet_status.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Map, Value, json};

use crate::config::{self, Config, LoadOptions};
use crate::job::{NewJob, Store, ops, schedule};
use crate::{Error, Result};

/// The longest a tool call waits for a job.
const MAX_WAIT: f64 = 600.0;

/// The MCP server: every call reads the config afresh.
#[derive(Clone)]
pub struct OrchMcp {
    config_path: PathBuf,
}

fn schema(props: Value, required: &[&str]) -> Arc<Map<String, Value>> {
    let v = json!({"type": "object", "properties": props, "required": required});
    Arc::new(v.as_object().cloned().unwrap_or_default())
}

/// The tools, with their JSON schemas.
pub fn tools() -> Vec<Tool> {
    let id = json!({"type": "string", "description": "a job id (from run_task or list_jobs)"});
    let wait = json!({"type": "number", "description": "seconds to wait for the job to finish (0: return at once; at most 600)"});
    vec![
        Tool::new(
            "run_task",
            "Queue a one-shot coding task on a repository: an agent runs it headless in a fresh worktree; on success the branch is pushed and a pull request opened. Returns the job (wait_secs to wait for it).",
            schema(
                json!({
                    "task": {"type": "string", "description": "what the agent should do"},
                    "profile": {"type": "string", "description": "a profile name (see list_profiles); default: [jobs].default_profile"},
                    "repo": {"type": "string", "description": "a git URL or a local path; default: the project dir"},
                    "base": {"type": "string", "description": "the branch to start from"},
                    "after": {"type": "array", "items": {"type": "string"}, "description": "job ids that must succeed first"},
                    "timeout_secs": {"type": "number"},
                    "no_pr": {"type": "boolean", "description": "push the branch but open no pull request"},
                    "wait_secs": wait.clone(),
                }),
                &["task"],
            ),
        ),
        Tool::new(
            "get_job",
            "One job: status (queued, running, succeeded, failed, cancelled), reason, branch, commits, pr {state, url, error}, summary.",
            schema(json!({"id": id.clone(), "wait_secs": wait}), &["id"]),
        ),
        Tool::new(
            "list_jobs",
            "Every job, optionally only those with one status.",
            schema(
                json!({"status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]}}),
                &[],
            ),
        ),
        Tool::new(
            "cancel_job",
            "Cancel a job: its agent's whole process group is stopped, then it is cancelled.",
            schema(json!({"id": id}), &["id"]),
        ),
        Tool::new(
            "list_profiles",
            "The job profiles: backend, model, whether a PR is opened.",
            schema(json!({}), &[]),
        ),
        Tool::new(
            "fleet_status",
            "The fleet: every agent, service, the watchdog and the phase (as orch status --json).",
            schema(json!({}), &[]),
        ),
    ]
}

fn text_result(v: &Value) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(
        serde_json::to_string_pretty(v).unwrap_or_default(),
    )])
}

fn error_result(e: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(e.to_string())])
}

fn arg_str(args: &Map<String, Value>, key: &str) -> Option<String> {
    args.get(key).and_then(Value::as_str).map(String::from)
}

fn wait_of(args: &Map<String, Value>) -> Option<Duration> {
    args.get("wait_secs")
        .and_then(Value::as_f64)
        .filter(|w| w.is_finite() && *w > 0.0)
        .map(|w| Duration::from_secs_f64(w.min(MAX_WAIT)))
}

impl OrchMcp {
    pub fn new(config_path: &Path) -> OrchMcp {
        OrchMcp {
            config_path: config_path.to_path_buf(),
        }
    }

    fn config(&self) -> Result<Config> {
        Ok(config::load(&self.config_path, LoadOptions::LENIENT)?.config)
    }

    /// Start what may start when no watchdog does it (the job runs in its own tmux session).
    fn schedule(&self, cfg: &Config) {
        if !ops::watchdog_running(cfg) {
            let tmux = crate::fleet::tmux_for(cfg);
            if let Err(e) = schedule::tick(cfg, &self.config_path, &tmux) {
                tracing::warn!("cannot start queued jobs: {e}");
            }
        }
    }

    /// One tool call, run off the async runtime (it reads files, runs git and tmux).
    pub fn call(&self, name: &str, args: &Map<String, Value>) -> Result<Value> {
        let cfg = self.config()?;
        match name {
            "run_task" => {
                let after = args
                    .get("after")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let job = ops::add(
                    &cfg,
                    NewJob {
                        task: arg_str(args, "task").unwrap_or_default(),
                        profile: arg_str(args, "profile"),
                        repo: arg_str(args, "repo"),
                        base: arg_str(args, "base"),
                        after,
                        timeout: args.get("timeout_secs").and_then(Value::as_f64),
                        no_pr: args.get("no_pr").and_then(Value::as_bool).unwrap_or(false),
                    },
                )?;
                self.schedule(&cfg);
                self.get(&cfg, &job.id, wait_of(args))
            }
            "get_job" => {
                let id =
                    arg_str(args, "id").ok_or_else(|| Error::Usage("id is required".into()))?;
                self.schedule(&cfg);
                self.get(&cfg, &id, wait_of(args))
            }
            "list_jobs" => {
                let want = arg_str(args, "status");
                let jobs: Vec<_> = Store::new(&cfg.log_dir)
                    .list()?
                    .into_iter()
                    .filter(|j| want.as_deref().is_none_or(|s| j.status.as_str() == s))
                    .collect();
                Ok(json!({ "jobs": jobs }))
            }
            "cancel_job" => {
                let id =
                    arg_str(args, "id").ok_or_else(|| Error::Usage("id is required".into()))?;
                Ok(json!(ops::cancel(&cfg, &id)?))
            }
            "list_profiles" => Ok(json!({"profiles": cfg.profiles.values().map(|p| json!({
                "name": p.name, "backend": p.backend, "model": p.model, "max_turns": p.max_turns,
                "auto_pr": p.auto_pr, "default": p.name == cfg.jobs.default_profile,
            })).collect::<Vec<_>>()})),
            "fleet_status" => {
                let snapshot = crate::fleet::tmux_for(&cfg).fleet()?;
                Ok(json!(crate::status::gather(&cfg, &snapshot)))
            }
            other => Err(Error::Usage(format!("no tool named {other:?}"))),
        }
    }

    fn get(&self, cfg: &Config, id: &str, wait: Option<Duration>) -> Result<Value> {
        let store = Store::new(&cfg.log_dir);
        let Some(wait) = wait else {
            return Ok(json!(store.load(id)?));
        };
        // Keep scheduling while waiting (when no watchdog does), so --after chains move on.
        let deadline = std::time::Instant::now() + wait;
        loop {
            let job = store.load(id)?;
            if job.status.is_terminal() || std::time::Instant::now() >= deadline {
                return Ok(json!(job));
            }
            self.schedule(cfg);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl ServerHandler for OrchMcp {
    fn get_info(&self) -> ServerConfig {
        let mut info = InitializeResult::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("orch", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "orch runs one-shot coding tasks (jobs) headless on a repository: run_task, then get_job with wait_secs until it is succeeded, failed or cancelled; a succeeded job has a pushed branch and usually a pull request (pr.url).".into(),
        );
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResponse, McpError> {
        let name = request.name.to_string();
        if !tools().iter().any(|t| t.name == name) {
            return Err(McpError::invalid_params(
                format!("no tool named {name:?}"),
                None,
            ));
        }
        let args = request.arguments.unwrap_or_default();
        let me = self.clone();
        let result = tokio::task::spawn_blocking(move || me.call(&name, &args))
            .await
            .map_err(|e| McpError::internal_error(format!("the tool failed: {e}"), None))?;
        Ok(match result {
            Ok(v) => text_result(&v),
            Err(e) => error_result(&e.to_string()),
        }
        .into())
    }
}

/// Serve MCP on stdin/stdout until the client closes it. Logs go to stderr only.
pub fn run(config_path: &Path) -> Result<ExitCode> {
    let config_path =
        std::path::absolute(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    // Fail early, with the config's own message, if it does not load.
    config::load(&config_path, LoadOptions::LENIENT)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the MCP server's runtime: {e}")))?;
    runtime.block_on(async move {
        let server = OrchMcp::new(&config_path)
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| Error::Runtime(format!("MCP initialisation failed: {e}")))?;
        server
            .waiting()
            .await
            .map_err(|e| Error::Runtime(format!("the MCP server failed: {e}")))?;
        Ok::<_, Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
