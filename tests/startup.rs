//! Start-up of the real `close-gateway` binary: a missing or malformed setting, or a Redis it
//! cannot reach, stops it with a
//! message naming the setting, and the API key never shows in `--help` or in any output.

use std::process::Output;
use std::time::Duration;

use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_close-gateway");
const SECRET: &str = "sk-startup-test-7f3a9c";

/// The binary with an empty environment, so that nothing from the developer's shell leaks in.
fn gateway(env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .envs(env.iter().copied())
        .args(args)
        .kill_on_drop(true);
    cmd
}

/// Runs to exit. The bound only turns a gateway that wrongly keeps running into a failure.
async fn output(mut cmd: Command) -> Output {
    let run = cmd.output();
    match tokio::time::timeout(Duration::from_secs(60), run).await {
        Ok(output) => output.expect("cannot run close-gateway"),
        Err(_) => panic!("close-gateway kept running; it should have stopped at start-up"),
    }
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Asserts the gateway refused to start, naming `setting`, and returns stderr.
async fn refuses(env: &[(&str, &str)], setting: &str) -> String {
    let out = output(gateway(env, &["--listen-addr", "127.0.0.1:0"])).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "started; stdout: {stdout}");
    assert!(
        !stdout.contains("listening on"),
        "it bound a listener: {stdout}"
    );
    assert!(
        stderr.contains(setting),
        "stderr does not name {setting}: {stderr}"
    );
    assert!(!stdout.contains(SECRET), "the key is in stdout: {stdout}");
    assert!(!stderr.contains(SECRET), "the key is in stderr: {stderr}");
    stderr
}

#[tokio::test]
async fn missing_api_key_names_it() {
    let stderr = refuses(&[], "CLOSE_API_KEY").await;
    assert!(stderr.contains("--dev"), "no hint at --dev: {stderr}");
}

#[tokio::test]
async fn empty_api_key_names_it() {
    refuses(&[("CLOSE_API_KEY", "  ")], "CLOSE_API_KEY").await;
}

#[tokio::test]
async fn unreadable_api_key_file_names_it() {
    refuses(
        &[("CLOSE_API_KEY_FILE", "/nonexistent/close-gateway/key")],
        "CLOSE_API_KEY_FILE",
    )
    .await;
}

#[tokio::test]
async fn malformed_api_key_names_it_without_echoing_it() {
    let key = format!("{SECRET} with spaces");
    refuses(&[("CLOSE_API_KEY", key.as_str())], "CLOSE_API_KEY").await;
}

#[tokio::test]
async fn malformed_base_url_names_it() {
    for url in [
        "not a url",
        "ftp://api.example.com/api/v1",
        "https://h/api/v1?x=1",
    ] {
        refuses(
            &[("CLOSE_API_KEY", SECRET), ("CLOSE_BASE_URL", url)],
            "CLOSE_BASE_URL",
        )
        .await;
    }
}

#[tokio::test]
async fn malformed_listen_addr_names_it() {
    let out = output(gateway(
        &[("CLOSE_API_KEY", SECRET), ("LISTEN_ADDR", "nowhere:port")],
        &[],
    ))
    .await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("LISTEN_ADDR"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
}

#[tokio::test]
async fn malformed_shutdown_grace_names_it() {
    refuses(
        &[("CLOSE_API_KEY", SECRET), ("SHUTDOWN_GRACE", "soon")],
        "SHUTDOWN_GRACE",
    )
    .await;
}

#[tokio::test]
async fn help_documents_the_key_but_never_shows_it() {
    let out = output(gateway(&[("CLOSE_API_KEY", SECRET)], &["--help"])).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("CLOSE_API_KEY"), "{stdout}");
    assert!(stdout.contains("CLOSE_BASE_URL"), "{stdout}");
    assert!(stdout.contains("SHUTDOWN_GRACE"), "{stdout}");
    assert!(!stdout.contains(SECRET), "the key is in --help: {stdout}");
    assert!(!stderr.contains(SECRET), "the key is in stderr: {stderr}");
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn unreachable_redis_names_the_setting_without_its_password() {
    let url = format!("redis://:{SECRET}@127.0.0.1:{}/", closed_port());
    refuses(
        &[("CLOSE_API_KEY", SECRET), ("REDIS_URL", url.as_str())],
        "REDIS_URL",
    )
    .await;
    refuses(
        &[("CLOSE_API_KEY", SECRET), ("REDIS_URL", "not a url")],
        "REDIS_URL",
    )
    .await;
    let seeds = format!("redis://:{SECRET}@127.0.0.1:{}", closed_port());
    refuses(
        &[
            ("CLOSE_API_KEY", SECRET),
            ("REDIS_CLUSTER_NODES", seeds.as_str()),
        ],
        "REDIS_CLUSTER_NODES",
    )
    .await;
}
