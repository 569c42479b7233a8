//! Bad policies are refused with precise errors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use quota_core::policy::{LineCol, Policy, PolicyError};

fn err(src: &str) -> PolicyError {
    Policy::from_toml(src).expect_err("policy should be refused")
}

const ENDPOINTS: &str = "[[endpoints]]\npath = \"a\"\n[[endpoints]]\npath = \"p/*\"\n";

#[test]
fn zero_window_is_refused_with_its_path_and_line() {
    let src = format!("{ENDPOINTS}[[tiers]]\nname = \"t\"\nlimits = [\n  {{ endpoint = \"a\", window = \"0s\", count = 3 }},\n]\n");
    let e = err(&src);
    assert!(matches!(e, PolicyError::ZeroWindow { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "tiers[0].limits[0].window: window must be longer than 0"
    );
    let at = Policy::locate(&src, &e).unwrap();
    assert_eq!(at.line, 8, "{at}");
}

#[test]
fn zero_count_is_refused() {
    let e = err(&format!("{ENDPOINTS}[[tiers]]\nname = \"t\"\nlimits = [{{ endpoint = \"a\", window = \"1m\", count = 0 }}]\n"));
    assert!(matches!(e, PolicyError::ZeroCount { .. }), "{e}");
}

#[test]
fn duplicate_endpoint_is_refused() {
    let e =
        err("[[endpoints]]\npath = \"a\"\n[[endpoints]]\npath = \"a\"\n[[tiers]]\nname = \"t\"\n");
    assert!(matches!(e, PolicyError::DuplicateEndpoint { .. }), "{e}");
    assert!(e.to_string().contains("endpoints[1].path"), "{e}");
}

#[test]
fn two_patterns_claiming_one_path_without_a_priority_are_refused() {
    let src =
        "[[endpoints]]\npath = \"p/*\"\n[[endpoints]]\npath = \"*/x\"\n[[tiers]]\nname = \"t\"\n";
    let e = err(src);
    assert!(matches!(e, PolicyError::AmbiguousPatterns { .. }), "{e}");
    assert!(
        e.to_string().contains("\"p/x\""),
        "names an example path: {e}"
    );
}

#[test]
fn a_priority_picks_between_overlapping_patterns() {
    let src = "[[endpoints]]\npath = \"p/*\"\n[[endpoints]]\npath = \"*/x\"\npriority = 1\n[[tiers]]\nname = \"t\"\n";
    let policy = Policy::from_toml(src).unwrap();
    assert_eq!(policy.endpoint("p/x").unwrap().path(), "*/x");
    assert_eq!(policy.endpoint("p/y").unwrap().path(), "p/*");
}

#[test]
fn an_exact_endpoint_beats_a_pattern() {
    let src =
        "[[endpoints]]\npath = \"p/*\"\n[[endpoints]]\npath = \"p/x\"\n[[tiers]]\nname = \"t\"\n";
    let policy = Policy::from_toml(src).unwrap();
    assert_eq!(policy.endpoint("p/x").unwrap().path(), "p/x");
}

#[test]
fn a_limit_on_an_undeclared_endpoint_is_refused() {
    let e = err(&format!("{ENDPOINTS}[[tiers]]\nname = \"t\"\nlimits = [{{ endpoint = \"b\", window = \"1m\", count = 1 }}]\n"));
    assert!(matches!(e, PolicyError::UnknownEndpoint { .. }), "{e}");
}

#[test]
fn per_match_needs_a_pattern() {
    let e = err(&format!(
        "{ENDPOINTS}[[tiers]]\nname = \"t\"\nlimits = [{{ endpoint = \"a\", per_match = true, window = \"1m\", count = 1 }}]\n"
    ));
    assert!(matches!(e, PolicyError::PerMatchOnExact { .. }), "{e}");
}

#[test]
fn duplicate_tiers_limits_and_grants_are_refused() {
    let e = err("[[tiers]]\nname = \"t\"\n[[tiers]]\nname = \"t\"\n");
    assert!(matches!(e, PolicyError::DuplicateTier { .. }), "{e}");
    let e = err(&format!(
        "{ENDPOINTS}[[tiers]]\nname = \"t\"\nlimits = [{{ endpoint = \"a\", window = \"1m\", count = 1 }}, {{ endpoint = \"a\", window = \"1m\", count = 2 }}]\n"
    ));
    assert!(matches!(e, PolicyError::DuplicateLimit { .. }), "{e}");
    let e = err("[[tiers]]\nname = \"a\"\ngranted = \"signup\"\n[[tiers]]\nname = \"b\"\ngranted = \"signup\"\n");
    assert!(matches!(e, PolicyError::DuplicateGrant { .. }), "{e}");
}

#[test]
fn a_policy_without_tiers_is_refused() {
    assert_eq!(err(""), PolicyError::NoTiers);
}

#[test]
fn limits_too_large_for_exact_arithmetic_are_refused() {
    let e = err(&format!("{ENDPOINTS}[[tiers]]\nname = \"t\"\nlimits = [{{ window = \"1d\", count = 1000000000000 }}]\n"));
    assert!(matches!(e, PolicyError::LimitTooLarge { .. }), "{e}");
}

#[test]
fn bad_paths_and_names_are_refused() {
    let e = err("[[endpoints]]\npath = \"img-*\"\n[[tiers]]\nname = \"t\"\n");
    assert!(matches!(e, PolicyError::BadPath { .. }), "{e}");
    let e = err(&format!("{ENDPOINTS}[[tiers]]\nname = \"t\"\nlimits = [{{ name = \"Per Minute\", window = \"1m\", count = 1 }}]\n"));
    assert!(matches!(e, PolicyError::BadLimitName { .. }), "{e}");
    let e = err("[[tiers]]\nname = \"\"\n");
    assert!(matches!(e, PolicyError::BadTierName { .. }), "{e}");
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let e = err("[[tiers]]\nname = \"t\"\nlimits = [{ window = \"1m\", count = 1 }\n");
    assert!(
        matches!(
            e,
            PolicyError::Syntax {
                format: "TOML",
                at: Some(LineCol { line: 3 | 4, .. }),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("TOML syntax at line"), "{e}");
    let e = Policy::from_json("{\"tiers\": [}").unwrap_err();
    assert!(
        matches!(
            e,
            PolicyError::Syntax {
                format: "JSON",
                at: Some(LineCol { line: 1, .. }),
                ..
            }
        ),
        "{e}"
    );
    // The position is said once.
    assert_eq!(
        e.to_string(),
        "JSON syntax at line 1, column 12: expected value"
    );
}

#[test]
fn meaning_errors_are_not_called_syntax() {
    let e = err("[[tiers]]\nname = \"t\"\nlimits = [{ window = \"1 fortnight\", count = 1 }]\n");
    match e {
        PolicyError::Invalid {
            format: "TOML",
            at: Some(LineCol { line: 3, .. }),
            ref message,
        } => {
            assert!(message.contains("fortnight"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(e.to_string().starts_with("invalid policy at line 3"), "{e}");
    let e = err("[[tiers]]\nname = \"t\"\nunknown_key = 1\n");
    assert!(
        matches!(e, PolicyError::Invalid { .. }),
        "unknown keys are refused: {e}"
    );
    let e = Policy::from_json("{\"tiers\": [{\"name\": 3}]}").unwrap_err();
    assert!(
        matches!(
            e,
            PolicyError::Invalid {
                format: "JSON",
                at: Some(LineCol { line: 1, .. }),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string().matches("line").count(), 1, "{e}");
}

#[test]
fn windows_accept_any_length_from_a_second_to_days() {
    let src = format!(
        "{ENDPOINTS}[[tiers]]\nname = \"t\"\nlimits = [\n{{ window = \"1s\", count = 1 }},\n{{ window = 90, count = 2 }},\n{{ window = \"7d\", count = 3 }},\n{{ window = \"250ms\", count = 1, name = \"burst\" }},\n]\n"
    );
    let policy = Policy::from_toml(&src).unwrap();
    let windows: Vec<u64> = policy
        .tier("t")
        .unwrap()
        .limits()
        .iter()
        .map(|l| l.limit().window_ms())
        .collect();
    assert_eq!(windows, [1000, 90_000, 7 * 86_400_000, 250]);
    let names: Vec<&str> = policy
        .tier("t")
        .unwrap()
        .limits()
        .iter()
        .map(|l| l.name())
        .collect();
    assert_eq!(names, ["second", "90s", "weekly", "burst"]);
}

#[test]
fn a_tier_with_more_limits_than_a_bucket_holds_is_refused() {
    let limits: Vec<String> = (0..1025)
        .map(|i| format!("  {{ endpoint = \"a\", name = \"l{i}\", window = \"1m\", count = 3 }},"))
        .collect();
    let e = err(&format!(
        "{ENDPOINTS}[[tiers]]\nname = \"t\"\nlimits = [\n{}\n]\n",
        limits.join("\n")
    ));
    assert!(
        matches!(
            e,
            PolicyError::TooManyLimits {
                count: 1025,
                max: 1024,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "tiers[0].limits: 1025 limits; a tier may have at most 1024"
    );
}
