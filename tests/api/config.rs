//! Configuration precedence, through the real binary: flags > KEYWARD_* > keyward.toml > defaults.

use crate::helpers::cli_at;
use std::process::Command;

fn effective(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> serde_json::Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
    command
        .arg("config")
        .arg("--json")
        .args(args)
        .current_dir(dir);
    for key in [
        "KEYWARD_LISTEN",
        "KEYWARD_DATABASE_URL",
        "KEYWARD_SESSION_LIFETIME",
        "KEYWARD_METRICS_LISTEN",
        "KEYWARD_CONFIG",
    ] {
        command.env_remove(key);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json")
}

#[test]
fn flags_beat_environment_which_beats_the_file_which_beats_defaults() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("keyward.toml"),
        "listen = \"127.0.0.1:9001\"\nsession_lifetime = \"12h\"\nsession_idle_timeout = \"30m\"\n",
    )
    .expect("write");

    let from_file = effective(dir.path(), &[], &[]);
    assert_eq!(from_file["listen"], "127.0.0.1:9001");
    assert_eq!(from_file["session_lifetime"], "12h");
    assert_eq!(from_file["history_retention"], "90d", "default");

    let from_env = effective(
        dir.path(),
        &[
            ("KEYWARD_LISTEN", "127.0.0.1:9002"),
            ("KEYWARD_SESSION_LIFETIME", "6h"),
        ],
        &[],
    );
    assert_eq!(from_env["listen"], "127.0.0.1:9002");
    assert_eq!(from_env["session_lifetime"], "6h");
    assert_eq!(
        from_env["session_idle_timeout"], "30m",
        "the file still fills what env leaves"
    );

    let from_flag = effective(
        dir.path(),
        &[("KEYWARD_LISTEN", "127.0.0.1:9002")],
        &[
            "--listen",
            "127.0.0.1:9003",
            "--database-url",
            "sqlite://x.db",
        ],
    );
    assert_eq!(from_flag["listen"], "127.0.0.1:9003");
    assert_eq!(from_flag["database_url"], "sqlite://x.db");
}

#[test]
fn trusted_proxies_from_the_environment_may_be_listed_with_spaces() {
    let dir = tempfile::tempdir().expect("dir");
    let effective = effective(
        dir.path(),
        &[(
            "KEYWARD_TRUSTED_PROXIES",
            "10.0.0.0/8, 192.168.0.0/16 ,::1/128",
        )],
        &[],
    );
    assert_eq!(
        effective["trusted_proxies"],
        serde_json::json!(["10.0.0.0/8", "192.168.0.0/16", "::1/128"])
    );
}

#[test]
fn a_log_filter_that_means_nothing_is_refused_instead_of_ignored() {
    let dir = tempfile::tempdir().expect("dir");
    // What `keyward config` says on stderr as it stops with a usage error.
    let refused = |filter: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .arg("config")
            .current_dir(dir.path())
            .env("KEYWARD_LOG", filter)
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2), "{filter}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    assert!(refused("bogus===").contains("KEYWARD_LOG"));
    // A level's other name would be read as a module's and log almost nothing.
    let said = refused("sqlx=warn,warning");
    assert!(
        said.contains("`warning` is not a level") && said.contains("did you mean warn"),
        "{said}"
    );
    let fine = effective(
        dir.path(),
        &[("KEYWARD_LOG", "keyward=debug,sqlx=warn")],
        &[],
    );
    assert_eq!(fine["log_level"], "keyward=debug,sqlx=warn");
}

#[test]
fn metrics_listen_comes_from_flag_environment_file_or_default() {
    let dir = tempfile::tempdir().expect("dir");
    assert_eq!(effective(dir.path(), &[], &[])["metrics_listen"], "main");

    std::fs::write(
        dir.path().join("keyward.toml"),
        "metrics_listen = \"127.0.0.1:9464\"\n",
    )
    .expect("write");
    assert_eq!(
        effective(dir.path(), &[], &[])["metrics_listen"],
        "127.0.0.1:9464"
    );
    let env = [("KEYWARD_METRICS_LISTEN", "off")];
    assert_eq!(effective(dir.path(), &env, &[])["metrics_listen"], "off");
    let flag = ["--metrics-listen", "[::1]:9465"];
    assert_eq!(
        effective(dir.path(), &env, &flag)["metrics_listen"],
        "[::1]:9465"
    );
}

#[tokio::test]
async fn a_bad_config_file_stops_with_a_message_naming_the_setting() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("keyward.toml"),
        "sesion_lifetime = \"12h\"\n",
    )
    .expect("write");

    let output = cli_at("sqlite://unused.db", dir.path().into(), &["config"], None).await;

    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("sesion_lifetime"));
}

#[tokio::test]
async fn unknown_database_schemes_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let output = cli_at(
        "mysql://localhost/shop",
        dir.path().into(),
        &["api", "list"],
        None,
    )
    .await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("mysql"));
}
