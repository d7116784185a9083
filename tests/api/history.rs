//! One history row per call, refused ones included, durable before the response; no secret
//! ever reaches the database.

use crate::helpers::{Settings, spawn_app, spawn_app_with};
use keyward::domain::history::{HistoryQuery, OutcomeFilter};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn every_call_has_its_row_with_the_spec_fields_before_its_response_arrives() {
    let app = spawn_app().await;
    let key = app.api_user("inventory", &["products:read"]).await;

    let response = app.get("/api/v1/products?limit=2", &key).await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();

    // Read straight after the response: the row is already committed.
    let rows = app.history("inventory").await;
    let row = rows.first().expect("a row");
    assert_eq!(row.call, "GET /api/v1/products");
    assert_eq!(row.ip, "127.0.0.1");
    assert_eq!(row.status, 200);
    assert_eq!(row.outcome, "ok");
    assert_eq!(row.request_id, request_id);
    assert_eq!(row.username.as_deref(), Some("inventory"));
    assert!(row.key_hint.as_deref().expect("hint").starts_with("kw_…"));
    assert!(row.date_modified >= row.date_added);
    assert!(row.session_id.is_none());
}

/// A SQLite database in memory lives in the write pool's one connection: its history is written
/// through the store's async methods, by a task, instead of by a thread with a connection of
/// its own as a file's is. Logins and their sessions too.
#[tokio::test]
async fn a_database_in_memory_has_every_call_in_its_history_too() {
    let app = spawn_app_with(Settings {
        database_url: Some("sqlite::memory:"),
        ..Settings::default()
    })
    .await;
    let key = app.api_user("inventory", &["products:read"]).await;
    let token = app.login("inventory", &key).await;
    assert_eq!(app.get("/api/v1/me", &token).await.status(), 200);
    assert_eq!(app.get("/api/v1/me", "kw_wrong").await.status(), 401);

    let rows = app.all_history().await;
    let calls: Vec<_> = rows.iter().map(|r| (r.call.as_str(), r.status)).collect();
    assert_eq!(
        calls,
        [
            ("GET /api/v1/me", 401),
            ("GET /api/v1/me", 200),
            ("POST /api/v1/login", 200)
        ]
    );
    let session = rows[1].session_id.expect("the call named its session");
    assert_eq!(rows[2].session_id, Some(session));
}

#[tokio::test]
async fn refused_calls_are_recorded_including_unknown_usernames_and_unmatched_routes() {
    let app = spawn_app().await;
    app.api_user("known", &[]).await;

    app.request(Method::GET, "/api/v1/me")
        .basic_auth("nobody-here", Some("kw_x"))
        .send()
        .await
        .expect("request");
    app.request(Method::GET, "/api/v1/nothing/here?token=secret")
        .send()
        .await
        .expect("request");
    app.request(Method::GET, "/api/v1/openapi.json")
        .send()
        .await
        .expect("request");

    let rows = app.all_history().await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].call, "GET /api/v1/openapi.json");
    assert_eq!(
        rows[1].call, "GET /api/v1/nothing/here",
        "no query string in the history"
    );
    assert_eq!(rows[1].status, 404);
    assert_eq!(rows[2].username.as_deref(), Some("nobody-here"));
    assert!(rows[2].api_user_id.is_none());
    assert_eq!(rows[2].outcome, "malformed_credentials");
}

/// A route or method the API does not have, or a body over the limit, is answered before the
/// call's checks, the same whoever sends it; the row still names whose credentials it carried,
/// so the API user's own history lists it.
#[tokio::test]
async fn calls_answered_before_their_checks_are_in_the_history_of_the_user_who_made_them() {
    let app = spawn_app().await;
    let key = app
        .api_user("erp", &["products:read", "products:write"])
        .await;
    let token = app.login("erp", &key).await;
    let remaining =
        |me: serde_json::Value| me["rate_limit"]["remaining"].as_u64().expect("remaining");
    let allowance = remaining(app.get_json("/api/v1/me", &key).await);
    let before = app.history("erp").await.len();

    let by_key = app
        .bearer(Method::DELETE, "/api/v1/products/1", &key)
        .send()
        .await
        .expect("request");
    assert_eq!(by_key.status(), 405);
    let by_token = app
        .request(Method::GET, "/api/v1/product")
        .header("X-Api-Token", &token)
        .send()
        .await
        .expect("request");
    assert_eq!(by_token.status(), 404);
    let by_basic = app
        .request(Method::POST, "/api/v1/products")
        .basic_auth("erp", Some(&key))
        .header("content-type", "application/json")
        .body(vec![b' '; 1024 * 1024 + 1])
        .send()
        .await
        .expect("request");
    assert_eq!(by_basic.status(), 413);
    // A wrong key gets the same answer; its row names the user it claimed to be, as a 401's
    // does, without a key.
    let wrong = app
        .request(Method::DELETE, "/api/v1/products/1")
        .basic_auth("erp", Some("kw_not_the_key"))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), 405);

    let rows = app.history("erp").await;
    let new: Vec<_> = rows[..rows.len() - before]
        .iter()
        .map(|r| {
            let hint = r.key_hint.as_deref().is_some_and(|h| h.starts_with("kw_…"));
            (r.call.as_str(), r.status, hint, r.session_id.is_some())
        })
        .collect();
    assert_eq!(
        new,
        [
            ("DELETE /api/v1/products/{id}", 405, false, false),
            ("POST /api/v1/products", 413, true, false),
            ("GET /api/v1/product", 404, true, true),
            ("DELETE /api/v1/products/{id}", 405, true, false),
        ]
    );
    assert!(rows.iter().all(|r| r.username.as_deref() == Some("erp")));

    // Naming the caller spends none of its allowance: only the call to `/me` does.
    assert!(remaining(app.get_json("/api/v1/me", &key).await) >= allowance - 1);
}

#[tokio::test]
async fn history_can_be_filtered_by_outcome() {
    let app = spawn_app().await;
    let key = app.api_user("mixed", &["products:read"]).await;
    app.get("/api/v1/products", &key).await;
    app.get("/api/v1/orders", &key).await;
    app.get("/api/v1/orders", &key).await;

    let user = app.credentials.get("mixed").await.expect("user");
    let query = |outcome| HistoryQuery {
        api_user_id: Some(user.id),
        outcome: Some(outcome),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        app.db
            .history(&query(OutcomeFilter::Ok))
            .await
            .expect("rows")
            .len(),
        1
    );
    assert_eq!(
        app.db
            .history(&query(OutcomeFilter::Refused))
            .await
            .expect("rows")
            .len(),
        2
    );
    let scope = OutcomeFilter::Only("insufficient_scope".parse().expect("outcome"));
    assert_eq!(app.db.history(&query(scope)).await.expect("rows").len(), 2);
}

#[tokio::test]
async fn no_key_or_token_is_stored_in_the_database() {
    let mut app = spawn_app().await;
    let key = app.api_user("secretive", &["products:read"]).await;
    let token = app.login("secretive", &key).await;
    app.get("/api/v1/me", &token).await;
    app.get(&format!("/api/v1/me?api_token={token}"), &key)
        .await;
    app.request(Method::POST, "/api/v1/login")
        .json(&json!({"username": "secretive", "key": format!("{key}x")}))
        .send()
        .await
        .expect("request");
    app.stop().await;

    let haystack = app.stored_text().await;
    assert!(
        haystack.contains("secretive") && haystack.contains("GET /api/v1/me"),
        "what the database holds was read"
    );
    for secret in [
        &key,
        &token,
        &key[3..40].to_owned(),
        &token[4..40].to_owned(),
    ] {
        assert!(
            !haystack.contains(secret.as_str()),
            "a secret was found in the database files"
        );
    }
}

#[tokio::test]
async fn graceful_shutdown_keeps_the_history_of_every_answered_call() {
    let mut app = spawn_app().await;
    let key = app.api_user("busy", &[]).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let request = app.bearer(Method::GET, "/api/v1/me", &key);
        calls.spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
    }
    let mut answered = 0;
    while let Some(result) = calls.join_next().await {
        if matches!(result.expect("task"), Ok(200)) {
            answered += 1;
        }
    }
    app.stop().await;

    let db = keyward::store::connect(&app.database_url, &Default::default())
        .await
        .expect("reopen");
    let user = db.api_user("busy").await.expect("query").expect("user");
    let rows = db
        .history(&HistoryQuery {
            api_user_id: Some(user.id),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("rows");
    assert_eq!(rows.len(), answered);
    assert!(
        user.last_used_at.is_some(),
        "last use is written on shutdown"
    );
}

#[tokio::test]
async fn a_read_whose_client_hangs_up_still_gets_its_row() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    let key = app.api_user("hangup", &[]).await;

    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let request =
        format!("GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    drop(stream);

    // Answered, or cut off and recorded as cancelled: either way the call has its row.
    for _ in 0..200 {
        if let Some(row) = app.all_history().await.first() {
            assert_eq!(row.call, "GET /api/v1/me");
            assert!(row.outcome == "ok" || row.outcome == "cancelled", "{row:?}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the call of a client that hung up has no history row");
}

#[tokio::test]
async fn a_change_whose_client_hangs_up_is_completed_and_recorded() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    let key = app.api_user("hangup-post", &["products:write"]).await;

    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let body = r#"{"sku": "GONE-1", "name": "Ordered by a vanished client", "price": "1.00", "quantity": 1}"#;
    let request = format!(
        "POST /api/v1/products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    drop(stream);

    for _ in 0..200 {
        if let Some(row) = app.history("hangup-post").await.first() {
            assert_eq!(
                (row.call.as_str(), row.status),
                ("POST /api/v1/products", 201)
            );
            assert_eq!(
                app.get("/api/v1/products?sku=GONE-1", &key).await.status(),
                200
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the change of a client that hung up has no history row");
}

#[tokio::test]
async fn a_login_whose_client_hangs_up_leaves_its_session_only_with_its_row() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    let key = app.api_user("hangup-login", &[]).await;

    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let body = format!(r#"{{"username": "hangup-login", "key": "{key}"}}"#);
    let request = format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    drop(stream);

    // A login runs in its connection's task: cut off, it writes its row as cancelled and no
    // session (nor a failed attempt: its client learned nothing); answered, its row names the
    // session it made.
    for _ in 0..200 {
        if let Some(row) = app.all_history().await.first() {
            assert_eq!(row.call, "POST /api/v1/login");
            let sessions = app
                .credentials
                .sessions("hangup-login", true)
                .await
                .expect("sessions");
            let made: Vec<_> = sessions.iter().map(|session| session.id).collect();
            // Its body came in one piece with its head: read before any wait, it names the user.
            assert_eq!(row.username.as_deref(), Some("hangup-login"), "{row:?}");
            match row.outcome.as_str() {
                "ok" => assert_eq!(made, Vec::from_iter(row.session_id), "{row:?}"),
                "cancelled" => assert_eq!(made, vec![], "{row:?}"),
                other => panic!("outcome {other}: {row:?}"),
            }
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the login of a client that hung up has no history row");
}

#[tokio::test]
async fn a_stalled_body_times_out_with_503_and_its_row_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::helpers::spawn_app_with(crate::helpers::Settings {
        request_timeout: "1s",
        ..Default::default()
    })
    .await;
    let key = app.api_user("staller", &["products:write"]).await;

    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/v1/products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"sku\":"
    );
    stream.write_all(head.as_bytes()).await.expect("send");
    assert_eq!(
        app.get("/api/v1/me", &key).await.status(),
        200,
        "others are served meanwhile"
    );

    let mut answer = vec![0u8; 2048];
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer[..read.expect("answered in time").expect("read")])
        .to_string();
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("\"unavailable\""), "{text}");
    let rows = app.history("staller").await;
    assert!(
        rows.iter()
            .any(|r| r.call == "POST /api/v1/products" && r.status == 503),
        "{rows:?}"
    );
}

#[tokio::test]
async fn a_key_typed_into_the_username_field_never_reaches_the_history() {
    let mut app = spawn_app().await;
    let key = app.api_user("careful", &[]).await;

    let swapped = app
        .request(Method::GET, "/api/v1/me")
        .basic_auth(&key, Some("password"))
        .send()
        .await
        .expect("request");
    assert_eq!(swapped.status(), 401);
    let path = format!("/api/v1/{key}");
    app.get(&path, &key).await;
    let rows = app.all_history().await;
    assert_eq!(
        rows[1].username.as_deref(),
        Some(keyward::auth::INVALID_USERNAME)
    );
    assert_eq!(rows[0].call, "GET /api/v1/kw_…");
    app.stop().await;
    if !app.on_postgres() {
        // Every connection is closed once the server has stopped: the last one copied the
        // write-ahead log back and removed it, so the files read below are the whole store.
        let files: Vec<_> = std::fs::read_dir(app.dir.path())
            .expect("dir")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert!(
            !files
                .iter()
                .any(|name| name.to_string_lossy().ends_with("-wal")),
            "{files:?}"
        );
    }

    assert!(
        !app.stored_text().await.contains(&key[3..40]),
        "the key reached the database"
    );
}

#[tokio::test]
async fn other_writes_keep_their_turn_while_calls_keep_the_history_writer_busy() {
    let app = spawn_app().await;
    let key = app.api_user("inventory", &["products:read"]).await;
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (request, busy) = (app.bearer(Method::GET, "/api/v1/me", &key), busy.clone());
        load.spawn(async move {
            let mut calls = 0u32;
            while busy.load(std::sync::atomic::Ordering::Relaxed) {
                let request = request.try_clone().expect("clone");
                assert_eq!(request.send().await.expect("me").status(), 200);
                calls += 1;
            }
            calls
        });
    }
    // Logins write their sessions through the same single SQLite writer the history batches
    // use: each must get its turn within the batches, far from the pool's 10 s timeout.
    for _ in 0..10 {
        let started = std::time::Instant::now();
        app.login("inventory", &key).await;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "a login waited {:?} for the writer",
            started.elapsed()
        );
    }
    busy.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut calls = 0;
    while let Some(done) = load.join_next().await {
        calls += done.expect("load");
    }
    assert!(calls > 0);
    // And the writer lets go once the calls stop: a write after them needs no wait either.
    let started = std::time::Instant::now();
    app.login("inventory", &key).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
