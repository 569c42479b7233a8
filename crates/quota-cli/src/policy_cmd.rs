//! `quota policy show|validate|export` (the words are the core's:
//! `Policy::describe`, `Policy::census`).

use crate::cli::{PolicyAction, PolicyFormat};
use quota_gateway::policy_file;

/// Runs a `quota policy` action; returns the process exit code.
pub(crate) fn run(action: &PolicyAction) -> i32 {
    let (file, out) = match action {
        PolicyAction::Show { file } => (file.as_deref(), None),
        PolicyAction::Validate { file } => (Some(file.as_path()), None),
        PolicyAction::Export { file, format } => (file.as_deref(), Some(*format)),
    };
    let policy = match policy_file::load_or_seed(file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let text = match (action, out) {
        (PolicyAction::Validate { file }, _) => {
            format!("{}: ok ({})\n", file.display(), policy.census())
        }
        (_, Some(PolicyFormat::Toml)) => policy.to_toml(),
        (_, Some(PolicyFormat::Json)) => policy.to_json(),
        (_, None) => policy.describe(),
    };
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    0
}
