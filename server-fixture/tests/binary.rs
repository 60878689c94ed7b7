//! The `resock-fixture` binary as a user runs it: the listening line, flags and environment
//! variables, refusals at start, and SIGTERM closing every socket with 1001.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_resock-fixture");

struct Proc {
    child: Child,
    url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary and reads its one stdout line (bounded by a watchdog thread).
fn spawn(args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(10)).expect("a listening line within 10 s");
    let url =
        line.trim_end().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected line {line:?}")).to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"), "{url}");
    Proc { child, url }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..500 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the process did not exit within 5 s");
}

#[tokio::test]
async fn prints_its_listening_line_serves_and_closes_1001_on_sigterm() {
    let mut p = spawn(&["--addr", "127.0.0.1:0", "--dev"], &[]);
    let http = reqwest::Client::new();
    let token = dev_token(&http, &p.url, "alice").await;
    let ws_url = p.url.replacen("http://", "ws://", 1);
    let mut a = Ws::connect(&format!("{ws_url}/ws?token={token}")).await.unwrap();
    a.expect_type("welcome").await;
    let mut b = Ws::connect(&format!("{ws_url}/ws/notifications?token={token}")).await.unwrap();
    b.expect_type("welcome").await;
    let status = Command::new("kill").args(["-TERM", &p.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(a.expect_close().await.0, 1001);
    assert_eq!(b.expect_close().await.0, 1001);
    let exit = wait_exit(&mut p.child);
    assert_eq!(exit.code(), Some(0));
}

#[tokio::test]
async fn every_flag_reads_its_environment_variable() {
    let p = spawn(
        &[],
        &[
            ("RESOCK_ADDR", "127.0.0.1:0"),
            ("RESOCK_DEV", "true"),
            ("RESOCK_HEARTBEAT_MS", "4321"),
            ("RESOCK_MAX_CONNECTIONS_PER_USER", "1"),
            ("RESOCK_JWT_SECRET", "from-env"),
        ],
    );
    let http = reqwest::Client::new();
    let token = sign("from-env", json!({"sub": "alice", "exp": now_s() + 60}));
    let ws_url = p.url.replacen("http://", "ws://", 1);
    let mut a = Ws::connect(&format!("{ws_url}/ws?token={token}")).await.unwrap();
    assert_eq!(a.expect_type("welcome").await["payload"]["heartbeat_ms"], 4321);
    let mut b = Ws::connect(&format!("{ws_url}/ws?token={token}")).await.unwrap();
    assert_eq!(b.expect_close().await.0, 1013);
    // --dev with --jwt-secret signs dev tokens with the given secret.
    let dev = dev_token(&http, &p.url, "bob").await;
    let res = http.post(format!("{}/ws/ticket", p.url)).bearer_auth(&dev).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[test]
fn refuses_to_start_without_a_secret_or_an_unreachable_redis() {
    // A port nothing listens on: bound, then released.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unreachable = format!("redis://127.0.0.1:{free}");
    for (args, words) in [
        (vec!["--addr", "127.0.0.1:0"], "--jwt-secret"),
        (vec!["--addr", "127.0.0.1:0", "--dev", "--redis", unreachable.as_str()], "--redis"),
        (vec!["--addr", "127.0.0.1:0", "--dev", "--rate-limit", "fast"], "rate limit"),
    ] {
        let out = Command::new(BIN).args(&args).env_remove("RESOCK_JWT_SECRET").output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "no listening line for {args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(words), "{args:?}: {err}");
    }
}

#[test]
fn help_lists_every_flag_of_the_contract() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--addr",
        "--jwt-secret",
        "--heartbeat-ms",
        "--pong-timeout-ms",
        "--idle-timeout-ms",
        "--ticket-ttl-ms",
        "--max-message-bytes",
        "--rate-limit",
        "--allowed-origin",
        "--max-connections",
        "--max-connections-per-user",
        "--single-connection-per-user",
        "--history",
        "--history-bytes",
        "--stream-ttl-ms",
        "--store-max",
        "--store-bytes",
        "--max-tickets-per-user",
        "--max-sse-per-user",
        "--max-sse",
        "--header-timeout-ms",
        "--body-timeout-ms",
        "--static",
        "--dev",
        "--redis",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    assert!(help.contains("RESOCK_HEARTBEAT_MS"));
}

/// Starts `cmd` with logging on and stderr to a temporary file; returns the child, its first
/// stdout line and the log's path.
fn spawn_logged(mut cmd: Command, name: &str) -> (Child, String, std::path::PathBuf) {
    let log = std::env::temp_dir().join(format!("resock-fixture-{name}-{}.txt", std::process::id()));
    let file = std::fs::File::create(&log).unwrap();
    let mut child = cmd.env_remove("RESOCK_LOG").stdout(Stdio::piped()).stderr(file).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, line, log)
}

#[tokio::test]
async fn logs_never_contain_a_token_or_a_ticket() {
    let mut cmd = Command::new(BIN);
    cmd.args(["--addr", "127.0.0.1:0", "--dev"]);
    let (child, line, log) = spawn_logged(cmd, "log");
    let url = line.trim_end().strip_prefix("listening on ").unwrap().to_owned();
    let mut p = Proc { child, url };
    let http = reqwest::Client::new();
    let token = dev_token(&http, &p.url, "alice").await;
    let v: Value =
        http.post(format!("{}/ws/ticket", p.url)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let ticket = v["ticket"].as_str().unwrap().to_owned();
    let ws_url = p.url.replacen("http://", "ws://", 1);
    let mut ok = Ws::connect(&format!("{ws_url}/ws?ticket={ticket}")).await.unwrap();
    ok.expect_type("welcome").await;
    // Refused credentials are logged too: by what was wrong, never by value.
    let mut reused = Ws::connect(&format!("{ws_url}/ws?ticket={ticket}")).await.unwrap();
    assert_eq!(reused.expect_close().await.0, 4001);
    let bad = format!("{token}x");
    let mut bad_ws = Ws::connect(&format!("{ws_url}/ws?token={bad}")).await.unwrap();
    assert_eq!(bad_ws.expect_close().await.0, 4001);
    // A subject that tries to forge a log line.
    let forger = dev_token(&http, &p.url, "eve opened\n[resock-fixture] conn c1 user=admin").await;
    let mut eve = Ws::connect(&format!("{ws_url}/ws?token={forger}")).await.unwrap();
    eve.expect_type("welcome").await;
    eve.close().await;
    Command::new("kill").args(["-TERM", &p.child.id().to_string()]).status().unwrap();
    wait_exit(&mut p.child);
    let logged = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).ok();
    eprintln!("fixture log: {} lines", logged.lines().count());
    assert!(logged.contains("user=alice"), "the log says something: {logged}");
    assert!(logged.contains("4001"), "refusals are logged: {logged}");
    assert!(
        logged.lines().all(|l| l.starts_with("[resock-fixture] "))
            && !logged.contains("\n[resock-fixture] conn c1 user=admin"),
        "a user id forged a log line: {logged}"
    );
    assert!(logged.contains(r#"user="eve opened\n[resock-fixture] conn c1 user=admin" opened"#), "{logged}");
    for secret in [token.as_str(), ticket.as_str()] {
        // No whole secret, nor its signature or random part.
        let tail = &secret[secret.len() - 16..];
        assert!(!logged.contains(tail), "a credential leaked into the log");
    }
}

#[test]
fn lowers_max_connections_to_fit_a_low_open_file_limit() {
    // A hard limit of 600 open files cannot hold 10 000 connections: the fixture says so and
    // serves at most 600 - 256.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("ulimit -n 600 && exec {BIN} --addr 127.0.0.1:0 --dev")]);
    let (mut child, line, log) = spawn_logged(cmd, "nofile");
    if !line.starts_with("listening on ") {
        let _ = child.wait();
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("no listening line ({line:?}); the fixture's stderr: {log}");
    }
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    wait_exit(&mut child);
    let logged = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).ok();
    assert!(logged.contains("--max-connections 10000 needs 10256 open files but the limit is 600"), "{logged}");
    assert!(logged.contains("serving at most 344 connections"), "{logged}");
}
