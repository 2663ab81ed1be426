//! `tdev` as a user runs it: its help (snapshots, reviewed like code: a change shows as a
//! diff; `INSTA_UPDATE=always cargo test -p tdev --test cli` rewrites them), and the
//! operator commands' exit codes and messages against a local stack.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::{start, start_paused, test_messaging};

/// Every command line whose help is kept as a snapshot.
const HELP: [&[&str]; 9] = [
    &["--help"],
    &["serve", "--help"],
    &["echo-agent", "--help"],
    &["openapi", "--help"],
    &["deploy", "--help"],
    &["rollback", "--help"],
    &["status", "--help"],
    &["history", "--help"],
    &["watch", "--help"],
];

/// `tdev` with `args` in `dir`, with none of the caller's `TDEV_*` settings or terminal
/// (help is the same on every machine: clap does not read the terminal's width here).
fn tdev_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tdev"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .env("COLUMNS", "100")
        .envs(env.iter().copied())
        .output()
        .expect("run tdev")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A fresh folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tdev-cli-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn help_of_every_command_is_as_reviewed() {
    let dir = scratch("help");
    for args in HELP {
        let out = tdev_in(&dir, args, &[]);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        let name = format!("help-{}", args[..args.len() - 1].join("-")).trim_end_matches('-').to_owned();
        let name = if name == "help" { "help-tdev".to_owned() } else { name };
        insta::assert_snapshot!(name, stdout(&out), &format!("tdev {}", args.join(" ")));
    }
}

/// A new command cannot be left out of the snapshots: every command `tdev --help` lists
/// (but `help`) has its own entry in [`HELP`].
#[test]
fn every_command_has_a_help_snapshot() {
    let help = stdout(&tdev_in(&scratch("commands"), &["--help"], &[]));
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    let snapshotted: Vec<&str> = HELP.iter().filter(|args| args.len() == 2).map(|args| args[0]).collect();
    assert!(commands.len() >= 7, "the command list was not found in: {help}");
    assert_eq!(commands, snapshotted, "add the new command's `--help` to HELP");
}

/// Every argument and option says what it is: no line of an argument list ends at its name.
#[test]
fn every_argument_and_option_has_a_description() {
    let dir = scratch("described");
    for args in HELP {
        // The short help (`-h`): one line per entry.
        let args: Vec<&str> = args.iter().map(|a| if *a == "--help" { "-h" } else { a }).collect();
        let help = stdout(&tdev_in(&dir, &args, &[]));
        let mut in_list = false;
        let mut entries = 0;
        let lines: Vec<&str> = help.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.starts_with(' ') {
                in_list = ["Arguments:", "Options:", "Connection:", "Commands:"].contains(line);
                continue;
            }
            // An entry is indented by 2 to 6; its description follows on the line, or (when
            // clap finds the line too long) on the next, indented by 10.
            let entry = line.trim_start();
            if !in_list || entry.is_empty() || line.starts_with("          ") {
                continue;
            }
            let (name, inline) = entry.split_once("  ").unwrap_or((entry, ""));
            let below =
                lines.get(i + 1).filter(|next| next.starts_with("          ")).map_or("", |n| n.trim());
            assert!(
                !inline.trim().is_empty() || !below.is_empty(),
                "tdev {}: {name} has no description",
                args.join(" ")
            );
            entries += 1;
        }
        assert!(entries >= 1, "tdev {}: no list of arguments or options read in:\n{help}", args.join(" "));
    }
}

/// `serve` and `echo-agent` do not talk to the API: they show only their own options; the
/// commands that do show where the API is, with the variables that set it.
#[test]
fn only_the_commands_that_call_the_api_take_its_options() {
    let dir = scratch("scoped");
    for command in ["serve", "echo-agent"] {
        let help = stdout(&tdev_in(&dir, &[command, "--help"], &[]));
        for option in ["--url", "--api-key", "--config", "--json"] {
            assert!(!help.contains(option), "tdev {command} --help shows {option}:\n{help}");
        }
        let refused = tdev_in(&dir, &[command, "--url", "http://127.0.0.1:1"], &[]);
        assert_eq!(refused.status.code(), Some(2), "tdev {command} --url is a wrong command line");
    }
    for command in ["deploy", "rollback", "status", "history", "watch"] {
        let help = stdout(&tdev_in(&dir, &[command, "--help"], &[]));
        for shown in ["--url <URL>", "[env: TDEV_URL=]", "http://127.0.0.1:8080", "[env: TDEV_API_KEY]"] {
            assert!(help.contains(shown), "tdev {command} --help does not show {shown}:\n{help}");
        }
    }
    // The key's value never shows, even when it is set.
    let help = stdout(&tdev_in(&dir, &["status", "--help"], &[("TDEV_API_KEY", "tdk_secret")]));
    assert!(!help.contains("tdk_secret"), "{help}");
}

/// When the API cannot be reached, the message names the URL and where it came from.
#[test]
fn an_unreachable_api_is_named_with_where_its_url_came_from() {
    let dir = scratch("unreachable");
    // The command line, its environment, the URL the message names, and where it came from.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 3] = [
        (
            &["status", "x"],
            &[("TDEV_URL", "http://127.0.0.1:9"), ("TDEV_API_KEY", "k")],
            "http://127.0.0.1:9/",
            "TDEV_URL",
        ),
        (
            &["status", "x", "--url", "http://127.0.0.1:9/api"],
            &[("TDEV_API_KEY", "k")],
            "http://127.0.0.1:9/api",
            "--url",
        ),
        (
            &["status", "x"],
            &[("TDEV_API_KEY", "k"), ("TDEV_CONFIG", "c.json")],
            "http://127.0.0.1:9/c",
            "c.json",
        ),
    ];
    std::fs::write(dir.join("c.json"), r#"{"url": "http://127.0.0.1:9/c"}"#).unwrap();
    for (args, env, url, source) in cases {
        let out = tdev_in(&dir, args, env);
        assert_eq!(out.status.code(), Some(3), "{args:?} {env:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.starts_with(&format!("error: cannot reach the API at {url} (from ")), "{err}");
        assert!(err.contains(source), "{args:?} {env:?}: the source {source} is not named: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
}

/// Runs `tdev` against the stack at `url` with `key`, off the async runtime.
async fn run(dir: &Path, url: &str, key: &str, args: &[&str]) -> Output {
    let (dir, url, key) = (dir.to_owned(), url.to_owned(), key.to_owned());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tdev_in(&dir, &args, &[("TDEV_URL", &url), ("TDEV_API_KEY", &key)])
    })
    .await
    .unwrap()
}

/// A spec that does not read is refused (exit 2) with each problem once, at its path,
/// and nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_prints_each_problem_once_at_its_path() {
    let stack = start().await;
    let dir = scratch("problems");
    std::fs::write(
        dir.join("bad.yaml"),
        "name: support bot\ntarget: {kind: local, url: 'not a url'}\nverify: {timeout_seconds: 0}\n",
    )
    .unwrap();
    let out = run(&dir, &stack.base, &stack.admin_key, &["deploy", "bad.yaml"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "nothing on stdout");
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 5, "a header, three problems, the record:\n{err}");
    assert_eq!(lines[0], "error: invalid request:", "{err}");
    for (line, path) in lines[1..4].iter().zip(["$.name", "$.target.url", "$.verify.timeout_seconds"]) {
        assert!(line.starts_with(&format!("  {path}: ")), "{path} is not on its own line:\n{err}");
        assert_eq!(line.matches("$.").count(), 1, "the path is said once: {line}");
    }
    assert!(lines[4].starts_with("recorded as /v1/deployments/"), "{err}");

    // A file that is not YAML at all: one problem, at `$`, said once.
    std::fs::write(dir.join("broken.yaml"), "name: [unclosed\n").unwrap();
    let out = run(&dir, &stack.base, &stack.admin_key, &["deploy", "broken.yaml"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(!err.contains("$: $:"), "{err}");
    let problems: Vec<&str> = err.lines().filter(|l| l.starts_with("  $")).collect();
    assert_eq!(problems.len(), 1, "{err}");
    assert!(problems[0].starts_with("  $: not YAML"), "{err}");

    // The dry run says the same, on stdout, as a report.
    let out = run(&dir, &stack.base, &stack.admin_key, &["deploy", "bad.yaml", "--dry-run"]).await;
    assert_eq!(out.status.code(), Some(2));
    let report = stdout(&out);
    assert_eq!(report.lines().count(), 4, "{report}");
    assert!(report.starts_with("invalid:\n  $.name: "), "{report}");
}

/// Exit code 1: the deployment ended otherwise than deployed. A smoke test that cannot
/// reach its agent fails a first deployment (nothing to go back to) and rolls an update
/// back.
#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_that_fails_or_is_rolled_back_exits_1() {
    let stack = start().await;
    let dir = scratch("exit1");
    // Nothing listens on port 9: the smoke test cannot reach the agent.
    let failing = "name: helper\ntarget: {kind: local, url: 'http://127.0.0.1:9/'}\n\
                   verify: {input: {question: ping}, expect: answer}\n";
    std::fs::write(dir.join("failing.yaml"), failing).unwrap();
    std::fs::write(
        dir.join("plain.yaml"),
        "name: helper\ntarget: {kind: local, url: 'http://127.0.0.1:9/v1'}\n",
    )
    .unwrap();

    let out = run(&dir, &stack.base, &stack.admin_key, &["deploy", "failing.yaml"]).await;
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(": failed (version"), "{}", stdout(&out));

    let out = run(&dir, &stack.base, &stack.admin_key, &["deploy", "plain.yaml"]).await;
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let out = run(&dir, &stack.base, &stack.admin_key, &["deploy", "failing.yaml"]).await;
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("rolling_back") && text.contains(": rolled_back ("), "{text}");
}

/// Exit code 4: still going when `--wait-seconds` ran out (here no worker runs, so the
/// deployment waits on its queue); the deployment goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_still_going_when_the_wait_runs_out_exits_4() {
    let (stack, workers) = start_paused(test_messaging()).await;
    let dir = scratch("exit4");
    std::fs::write(
        dir.join("plain.yaml"),
        "name: helper\ntarget: {kind: local, url: 'http://127.0.0.1:9/v1'}\n",
    )
    .unwrap();
    let out =
        run(&dir, &stack.base, &stack.admin_key, &["deploy", "plain.yaml", "--wait-seconds", "1"]).await;
    assert_eq!(out.status.code(), Some(4), "{}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("is still going after 1 s; it goes on"), "{err}");
    let id = stdout(&out).lines().next().and_then(|l| l.split(' ').nth(1)).unwrap_or_default().to_owned();
    assert!(id.starts_with("dep"), "the first line names the deployment: {}", stdout(&out));

    // It does go on once a worker runs, and the CLI follows it to the end.
    workers();
    let record: Value = stack.deployment_end(&id).await;
    assert_eq!(record["status"], "deployed");
    let out = run(&dir, &stack.base, &stack.admin_key, &["status", &id]).await;
    assert_eq!(out.status.code(), Some(0));
}

/// Every problem of a spec at once, each at its field — also when one of them is a field
/// that does not read (an unknown name, a wrong type).
#[tokio::test(flavor = "multi_thread")]
async fn a_spec_with_unreadable_fields_still_reports_every_problem_at_its_field() {
    let stack = start().await;
    let dir = scratch("every-problem");
    let cases = [
        // An unknown field beside broken ones.
        (
            "name: support bot\ndescripton: x\ntarget: {kind: local, url: 'not a url'}\n",
            &["$.descripton", "$.name", "$.target.url"][..],
        ),
        // A field of the wrong type beside broken ones.
        (
            "name: support bot\nidle_session_ttl_seconds: ten\naction_groups: [{name: 'a b'}]\n",
            &["$.idle_session_ttl_seconds", "$.name", "$.action_groups[0].name"][..],
        ),
        // An unknown field of the target, at its own path.
        ("name: helper\ntarget: {kind: local, urll: 'http://127.0.0.1:9/'}\n", &["$.target.urll"][..]),
    ];
    for (spec, paths) in cases {
        std::fs::write(dir.join("spec.yaml"), spec).unwrap();
        let out = run(&dir, &stack.base, &stack.admin_key, &["deploy", "spec.yaml", "--dry-run"]).await;
        assert_eq!(out.status.code(), Some(2));
        let report = stdout(&out);
        for path in paths {
            assert!(
                report.contains(&format!("  {path}: ")),
                "{path} is not reported for\n{spec}---\n{report}"
            );
        }
    }
}

/// `tdev watch` prints the events that match as they happen, one JSON line each with
/// `--json`, and stops after `--count`; a bad key is refused (exit 2).
#[tokio::test(flavor = "multi_thread")]
async fn watch_prints_matching_events_as_they_happen() {
    let stack = start().await;
    let dir = scratch("watch");
    let agent =
        serde_json::json!({"id": "w", "name": "W", "target": {"kind": "http", "url": "http://127.0.0.1:9/"}});
    assert_eq!(stack.post_json("/v1/agents", &stack.admin_key, &agent).await.status(), 201);
    let watching = {
        let (dir, url, key) = (dir.clone(), stack.base.clone(), stack.admin_key.clone());
        tokio::spawn(async move {
            run(&dir, &url, &key, &["watch", "--type", "message.accepted", "--count", "2", "--json"]).await
        })
    };
    // The stream starts from now: send until the watcher has seen two.
    let mut sent = Vec::new();
    for i in 0..100 {
        if watching.is_finished() {
            break;
        }
        let message = serde_json::json!({"to_agent": "w", "type": format!("t{i}")});
        let accepted: Value =
            stack.post_json("/v1/messages", &stack.admin_key, &message).await.json().await.unwrap();
        sent.push(accepted["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let out = watching.await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert_eq!(line["type"], "message.accepted");
        assert!(sent.contains(&line["subject"].as_str().unwrap().to_owned()), "{line}");
    }
    assert!(lines[0]["time"].as_str() <= lines[1]["time"].as_str(), "in order");

    let refused = run(&dir, &stack.base, "tdk_not_a_key", &["watch"]).await;
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
}
