//! The batching result store: ids and numbering of results written together, a rejected batch
//! undone whole, edits and renames made while results wait, a pool of one connection.
//! Every scenario runs on SQLite and on PostgreSQL, against a target inside the test process.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::json;
use testkit::{eventually, int_id, next_ws_frame, on_both_backends, GraphqlWs, Target, WAIT};
use tokio::time::Instant;

use crate::common::{check_now, history, open_live_seed_ws, stored_results, App, Backend, BIN};

/// Results written together (many monitors due at once) each carry the id the database gave
/// their own row: every event's id names a stored row of that monitor with the same check
/// time, and each monitor's rows are numbered 1, 2, 3, ...
async fn results_stored_in_one_batch_carry_the_ids_of_their_own_rows(backend: Backend) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let probe = app.create_monitor(&target.url("/ok"), 60, 5, false).await;
    let mut ws = GraphqlWs::connect(&app, "graphql-transport-ws").await;
    ws.subscribe(
        "all",
        "subscription { checkResults { id monitorId checkedAt } }",
        json!({}),
    )
    .await;
    let warm_up = ws
        .wait_until_live(&["all"], || async {
            check_now(&app, probe).await.0["id"].as_i64().unwrap()
        })
        .await;

    // Created active, each is due at once: their first checks land in the same batches.
    let mut monitors = Vec::new();
    for _ in 0..30 {
        monitors.push(app.create_monitor(&target.url("/ok"), 1, 5, true).await);
    }
    let mut events: Vec<(i64, i64, String)> = Vec::new();
    let deadline = Instant::now() + WAIT;
    while monitors
        .iter()
        .any(|m| events.iter().filter(|e| e.0 == *m).count() < 2)
    {
        let (_, data) = ws
            .next_data(deadline)
            .await
            .unwrap_or_else(|| panic!("not every monitor was checked twice: {events:?}"));
        let result = &data["checkResults"];
        if int_id(&result["id"]) > warm_up {
            events.push((
                int_id(&result["monitorId"]),
                int_id(&result["id"]),
                result["checkedAt"].as_str().unwrap().to_owned(),
            ));
        }
    }

    let db = app.db.connect().await;
    let mut ids = std::collections::HashSet::new();
    for (monitor, id, checked_at) in &events {
        assert!(ids.insert(*id), "id {id} delivered twice: {events:?}");
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT CAST(monitor_id AS bigint) AS monitor_id, checked_at_ms \
                     FROM check_results WHERE id = {id}"
                ),
            ))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no stored row has id {id}"));
        let stored_monitor: i64 = row.try_get("", "monitor_id").unwrap();
        let stored_at: i64 = row.try_get("", "checked_at_ms").unwrap();
        let sent_at = DateTime::parse_from_rfc3339(checked_at)
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            (stored_monitor, stored_at),
            (*monitor, sent_at),
            "event {id} and its stored row"
        );
    }
    for monitor in &monitors {
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT CAST(seq AS bigint) AS seq FROM check_results \
                     WHERE monitor_id = {monitor} ORDER BY id"
                ),
            ))
            .await
            .unwrap();
        let seqs: Vec<i64> = rows.iter().map(|r| r.try_get("", "seq").unwrap()).collect();
        let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert_eq!(seqs, expected, "monitor {monitor}'s results in id order");
    }
    let _ = db.close().await;
}

/// A monitor's result numbers (`seq`, in id order) and its `last_seq`.
async fn numbering(db: &DatabaseConnection, monitor: i64) -> (Vec<i64>, i64) {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            format!(
                "SELECT CAST(seq AS bigint) AS seq FROM check_results \
                 WHERE monitor_id = {monitor} ORDER BY id"
            ),
        ))
        .await
        .unwrap();
    let last = db
        .query_one_raw(Statement::from_string(
            backend,
            format!(
                "SELECT CAST(last_seq AS bigint) AS last_seq FROM monitors WHERE id = {monitor}"
            ),
        ))
        .await
        .unwrap()
        .expect("the monitor's row");
    (
        rows.iter().map(|r| r.try_get("", "seq").unwrap()).collect(),
        last.try_get("", "last_seq").unwrap(),
    )
}

async fn a_batch_the_database_rejects_is_undone_whole_and_storing_resumes(backend: Backend) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let db = app.db.connect().await;
    let mut monitors = Vec::new();
    for _ in 0..5 {
        monitors.push(app.create_monitor(&target.url("/ok"), 1, 5, true).await);
    }
    for &monitor in &monitors {
        eventually(WAIT, "a first stored result", || async {
            (stored_results(&db, monitor).await > 0).then_some(())
        })
        .await;
    }

    // From now on the database rejects every result row, until the flag row goes.
    let reject = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Sqlite => {
            "CREATE TABLE reject_results (x INTEGER); INSERT INTO reject_results VALUES (1); \
             CREATE TRIGGER reject_results BEFORE INSERT ON check_results \
             WHEN EXISTS (SELECT 1 FROM reject_results) \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        }
        _ => {
            "CREATE TABLE reject_results (x integer); INSERT INTO reject_results VALUES (1); \
             CREATE FUNCTION reject_results() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF EXISTS (SELECT 1 FROM reject_results) THEN \
             RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER reject_results BEFORE INSERT ON check_results \
             FOR EACH ROW EXECUTE FUNCTION reject_results();"
        }
    };
    db.execute_unprepared(reject).await.unwrap();
    let mut before = Vec::new();
    for &monitor in &monitors {
        before.push(numbering(&db, monitor).await);
    }
    // Several batches fail meanwhile (each tried three times, then given up).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (&monitor, before) in monitors.iter().zip(&before) {
        assert_eq!(
            &numbering(&db, monitor).await,
            before,
            "monitor {monitor}: nothing of a rejected batch is kept, its monitor update included"
        );
    }

    db.execute_unprepared("DELETE FROM reject_results")
        .await
        .unwrap();
    for (&monitor, before) in monitors.iter().zip(&before) {
        eventually(WAIT, "results stored again", || async {
            (numbering(&db, monitor).await.0.len() >= before.0.len() + 2).then_some(())
        })
        .await;
    }
    for &monitor in &monitors {
        let (seqs, last) = numbering(&db, monitor).await;
        let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert_eq!(
            seqs, expected,
            "monitor {monitor}'s results number on without a gap"
        );
        assert!(
            last >= *seqs.last().unwrap() && last <= *seqs.last().unwrap() + 1,
            "monitor {monitor}: last_seq {last} is its newest result's ({seqs:?}), or one past it \
             when a batch is being written"
        );
    }
    let _ = db.close().await;
}

/// A monitor edited while a result for it waits to be written keeps the edit: the result is
/// stored (numbered on without a gap), and the monitor's due time stays as the edit set it
/// instead of being moved on from the value read before the edit. On SQLite this also covers
/// the store's cache of monitor rows: the first result cached the monitor, and the edit comes
/// from another connection (without the `PRAGMA data_version` check the edit is overwritten).
async fn an_edit_made_while_a_result_waits_to_be_written_is_kept(backend: Backend) {
    use sea_orm::TransactionTrait;

    let target = Target::start().await;
    let app = spawn_app!(backend);
    let db = app.db.connect().await;
    let monitor = app.create_monitor(&target.url("/ok"), 1, 5, true).await;
    eventually(WAIT, "a first stored result", || async {
        (stored_results(&db, monitor).await > 0).then_some(())
    })
    .await;

    // Hold the monitor's row (on SQLite, the write lock) while the next result is checked.
    let backend = db.get_database_backend();
    let before = numbering(&db, monitor).await.0.len();
    let txn = db.begin().await.unwrap();
    txn.execute_raw(Statement::from_string(
        backend,
        format!("UPDATE monitors SET next_check_at = next_check_at WHERE id = {monitor}"),
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The edit: the monitor is not due for a day (as a pause-and-resume or a lease would move
    // it), committed while the result waits.
    let edited = Utc::now() + chrono::Duration::days(1);
    let edited_text = match backend {
        sea_orm::DatabaseBackend::Sqlite => {
            edited.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
        }
        _ => edited.to_rfc3339(),
    };
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        match backend {
            sea_orm::DatabaseBackend::Sqlite => {
                "UPDATE monitors SET next_check_at = ? WHERE id = ?"
            }
            _ => "UPDATE monitors SET next_check_at = CAST($1 AS timestamptz) WHERE id = $2",
        },
        [edited_text.into(), monitor.into()],
    ))
    .await
    .unwrap();
    txn.commit().await.unwrap();

    // The waiting result and the ones after it are stored.
    eventually(WAIT, "the waiting result stored", || async {
        (numbering(&db, monitor).await.0.len() >= before + 2).then_some(())
    })
    .await;
    let (seqs, last) = numbering(&db, monitor).await;
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "the results number on without a gap");
    assert!(
        last >= *seqs.last().unwrap(),
        "last_seq {last} and {seqs:?}"
    );
    let due_ms: i64 = match backend {
        sea_orm::DatabaseBackend::Sqlite => {
            let row = db
                .query_one_raw(Statement::from_string(
                    backend,
                    format!("SELECT next_check_at AS due FROM monitors WHERE id = {monitor}"),
                ))
                .await
                .unwrap()
                .expect("the monitor");
            let due: String = row.try_get("", "due").unwrap();
            DateTime::parse_from_rfc3339(&due)
                .unwrap()
                .timestamp_millis()
        }
        _ => {
            let row = db
                .query_one_raw(Statement::from_string(
                    backend,
                    format!(
                        "SELECT CAST(EXTRACT(EPOCH FROM next_check_at) * 1000 AS bigint) AS due \
                         FROM monitors WHERE id = {monitor}"
                    ),
                ))
                .await
                .unwrap()
                .expect("the monitor");
            row.try_get("", "due").unwrap()
        }
    };
    let due = DateTime::<Utc>::from_timestamp_millis(due_ms).unwrap();
    assert!(
        (due - edited).num_milliseconds().abs() < 1000,
        "the edited due time {edited} was overwritten with {due}"
    );
    let _ = db.close().await;
}

/// A monitor renamed between two checks is published under its new name. On PostgreSQL the
/// result store keeps the monitor rows it wrote (in a process without RabbitMQ) instead of
/// reading them for every batch: the rename changes neither the due time nor the result
/// count, so only the write's `updated_at` condition tells the store its row is stale (without
/// it, the second frame carries the old name). On SQLite, `PRAGMA data_version` does.
async fn a_monitor_renamed_between_checks_is_published_under_its_new_name(backend: Backend) {
    let target = Target::start().await;
    let app = spawn_app!(backend);
    let probe = app.create_monitor(&target.url("/ok"), 60, 5, false).await;
    let body = |name: &str| json!({"name": name, "url": target.url("/ok"), "timeout_seconds": 5, "interval_seconds": 60, "active": false});
    let (status, created) = app
        .json(Method::POST, "/monitors", Some(body("before the rename")))
        .await;
    assert_eq!(status, 201, "{created}");
    let x = created["id"].as_i64().unwrap();
    let mut socket = open_live_seed_ws(&app, probe).await;

    let mut names = Vec::new();
    for rename in [None, Some("after the rename"), Some("renamed again")] {
        if let Some(name) = rename {
            let (status, updated) = app
                .json(Method::PUT, &format!("/monitors/{x}"), Some(body(name)))
                .await;
            assert_eq!(status, 200, "{updated}");
        }
        check_now(&app, x).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let frame = next_ws_frame(&mut socket, deadline)
                .await
                .unwrap_or_else(|| panic!("no frame for monitor {x}; names so far {names:?}"));
            if frame["service_id"] == x {
                names.push(frame["name"].clone());
                break;
            }
        }
    }
    assert_eq!(
        names,
        vec![
            json!("before the rename"),
            json!("after the rename"),
            json!("renamed again")
        ]
    );
    let (status, stored) = app.json(Method::GET, &format!("/monitors/{x}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(stored["name"], "renamed again", "{stored}");
    assert_eq!(
        history(&app, x, 10).await.len(),
        3,
        "every check is stored once"
    );
}

/// With a database pool of one connection the API keeps answering while results are stored:
/// on PostgreSQL the result store keeps the connections it writes on between batches, but
/// never more than a quarter of the pool (none of a pool this small), so it never holds the
/// connection the API needs (which would wait out the pool's 5 s and fail).
async fn a_pool_of_one_connection_still_serves_the_api_while_checks_are_stored(backend: Backend) {
    let target = Target::start().await;
    let Some(app) = App::spawn_with(BIN, backend, &[("DB_MAX_CONNECTIONS", "1")]).await else {
        return;
    };
    let monitor = app.create_monitor(&target.url("/ok"), 1, 5, true).await;
    for round in 0..4 {
        eventually(WAIT, "results stored and listed", || async {
            (history(&app, monitor, 10).await.len() > round).then_some(())
        })
        .await;
        let (status, body) = app
            .json(Method::GET, &format!("/monitors/{monitor}"), None)
            .await;
        assert_eq!(status, 200, "round {round}: {body}");
        let (status, body) = app
            .json(Method::POST, &format!("/monitors/{monitor}/check"), None)
            .await;
        assert_eq!(status, 200, "round {round}: {body}");
    }
    assert!(
        !app.log().contains("pool timed out"),
        "nothing waited out the pool: {}",
        app.log()
    );
}

on_both_backends!(
    results_stored_in_one_batch_carry_the_ids_of_their_own_rows,
    a_batch_the_database_rejects_is_undone_whole_and_storing_resumes,
    an_edit_made_while_a_result_waits_to_be_written_is_kept,
    a_monitor_renamed_between_checks_is_published_under_its_new_name,
    a_pool_of_one_connection_still_serves_the_api_while_checks_are_stored,
);
