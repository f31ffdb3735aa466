//! What consumers read: release counters and summaries that equal a recount from the stored
//! documents, `since` on every list, HTTP caching, statistics, the tail log and metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reportstore::generator::ReportGenerator;
use serde_json::Value;

use crate::support::{InProcessServer, client, fixture};

type Tally = BTreeMap<(String, String), [u64; 4]>;

fn grade_index(grade: &str) -> usize {
    ["pass", "fail", "na", "unknown"]
        .iter()
        .position(|g| *g == grade)
        .unwrap()
}

async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn releases_of(list: &Value) -> Tally {
    list.as_array()
        .unwrap()
        .iter()
        .map(|release| {
            (
                (
                    release["dist"].as_str().unwrap().to_string(),
                    release["version"].as_str().unwrap().to_string(),
                ),
                ["pass", "fail", "na", "unknown"].map(|grade| release[grade].as_u64().unwrap()),
            )
        })
        .collect()
}

/// Counts grades per release from the documents as the store returns them.
async fn recount(client: &reqwest::Client, base: &str, ids: &[String]) -> Tally {
    let mut tally = Tally::new();
    for id in ids {
        let (status, document) = get_json(client, &format!("{base}/v3/report/{id}")).await;
        assert_eq!(status, 200, "{id}");
        let key = (
            document["distribution"]["name"]
                .as_str()
                .unwrap()
                .to_string(),
            document["distribution"]["version"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        tally.entry(key).or_default()
            [grade_index(document["result"]["grade"].as_str().unwrap())] += 1;
    }
    tally
}

async fn post_generated(
    client: &reqwest::Client,
    base: &str,
    generator: &mut ReportGenerator,
    count: usize,
) -> Vec<(String, Value)> {
    let testers = generator.testers().to_vec();
    let mut stored = Vec::new();
    for _ in 0..count {
        let document = generator.next_report().to_v3_document(&testers);
        let response = client
            .post(format!("{base}/v3/report"))
            .json(&document)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let id = response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        stored.push((id, document));
    }
    stored
}

fn metric_value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_counters_summaries_and_since_match_the_documents() {
    let directory = tempfile::tempdir().unwrap();
    let server = InProcessServer::start_in(directory.path()).await;
    let client = client();
    let base = server.base_url.clone();

    // Phase A: the real clients' reports and generated ones.
    let mut ids = Vec::new();
    for register in [
        "first-contact-03-register",
        "cpan-reporter-register",
        "cpanm-reporter-register",
    ] {
        assert_eq!(fixture(register).send(&client, &base).await.status(), 201);
    }
    for name in [
        "first-contact-04-submit-pass",
        "send-report-fail-long-output",
        "send-report-unknown-utf8-comments",
        "cpan-reporter-pass",
        "cpan-reporter-fail",
        "cpan-reporter-na",
        "cpan-reporter-unknown",
        "cpanm-reporter-pass-pass",
        "cpanm-reporter-fail-fail",
        "cpanm-reporter-na-na",
        "cpanm-reporter-notests-pass",
    ] {
        let submission = fixture(name);
        assert_eq!(
            submission.send(&client, &base).await.status(),
            201,
            "{name}"
        );
        ids.push(
            submission.submission_levels().0["guid"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut generator = ReportGenerator::new(7);
    let phase_a = post_generated(&client, &base, &mut generator, 150).await;
    ids.extend(phase_a.iter().map(|(id, _)| id.clone()));

    // `since` has whole seconds: wait until a second boundary lies between the phases.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let since = reportstore::ingest::format_timestamp(time::OffsetDateTime::now_utc());
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Phase B: more reports, some to releases phase A touched, and a resubmission (no change).
    let mut phase_b = post_generated(&client, &base, &mut generator, 60).await;
    let (_, first_document) = &phase_a[0];
    let mut again = first_document.clone();
    again["result"]["grade"] = Value::from("fail");
    again.as_object_mut().unwrap().remove("id");
    let response = client
        .post(format!("{base}/v3/report"))
        .json(&again)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    phase_b.push((id, again));
    assert_eq!(
        fixture("cpan-reporter-pass")
            .send(&client, &base)
            .await
            .status(),
        200
    );
    ids.extend(phase_b.iter().map(|(id, _)| id.clone()));

    // Every counter equals a recount from the stored documents.
    let expected = recount(&client, &base, &ids).await;
    let (status, all) = get_json(&client, &format!("{base}/v3/release")).await;
    assert_eq!(status, 200);
    assert_eq!(releases_of(&all), expected);

    // `since` returns exactly the releases changed after it.
    let changed: BTreeSet<(String, String)> = phase_b
        .iter()
        .map(|(_, document)| {
            (
                document["distribution"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                document["distribution"]["version"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let (status, since_list) = get_json(&client, &format!("{base}/v3/release?since={since}")).await;
    assert_eq!(status, 200);
    let since_releases = releases_of(&since_list);
    assert_eq!(
        since_releases.keys().cloned().collect::<BTreeSet<_>>(),
        changed
    );
    for (key, counts) in &since_releases {
        assert_eq!(
            Some(counts),
            expected.get(key),
            "{key:?}: since gives the full counters"
        );
    }

    // The per-dist, per-release and per-author lists, with since.
    let (dist, version) = changed.iter().next().unwrap().clone();
    let (status, dist_list) = get_json(&client, &format!("{base}/v3/release/dist/{dist}")).await;
    assert_eq!(status, 200);
    let dist_expected: Tally = expected
        .iter()
        .filter(|((d, _), _)| *d == dist)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(releases_of(&dist_list), dist_expected);
    let (status, one) =
        get_json(&client, &format!("{base}/v3/release/dist/{dist}/{version}")).await;
    assert_eq!(status, 200);
    assert_eq!(one["dist"], dist.as_str());
    assert_eq!(
        ["pass", "fail", "na", "unknown"].map(|grade| one[grade].as_u64().unwrap()),
        expected[&(dist.clone(), version.clone())]
    );
    let (status, mbharness) =
        get_json(&client, &format!("{base}/v3/release/author/MBHARNESS")).await;
    assert_eq!(status, 200);
    let mbharness: BTreeSet<String> = releases_of(&mbharness)
        .keys()
        .map(|(dist, _)| dist.clone())
        .collect();
    assert_eq!(mbharness.len(), 4, "{mbharness:?}");
    let (status, _) = get_json(
        &client,
        &format!("{base}/v3/release/author/MBHARNESS?since={since}"),
    )
    .await;
    assert_eq!(
        status, 404,
        "no MBHARNESS release changed in phase B (a duplicate changes nothing)"
    );

    // Summaries: per release, with since, and the bare list's required filters.
    let (status, summaries) =
        get_json(&client, &format!("{base}/v3/summary/{dist}/{version}")).await;
    assert_eq!(status, 200);
    let total: u64 = expected[&(dist.clone(), version.clone())].iter().sum();
    assert_eq!(summaries.as_array().unwrap().len() as u64, total);
    let (status, recent) = get_json(
        &client,
        &format!("{base}/v3/summary/{dist}/{version}?since={since}"),
    )
    .await;
    assert_eq!(status, 200);
    let phase_b_ids: BTreeSet<&str> = phase_b.iter().map(|(id, _)| id.as_str()).collect();
    for summary in recent.as_array().unwrap() {
        assert!(
            phase_b_ids.contains(summary["guid"].as_str().unwrap()),
            "{summary}"
        );
        for field in [
            "date", "grade", "reporter", "dist", "version", "platform", "perl", "osname", "osvers",
        ] {
            assert!(summary[field].is_string(), "{field} in {summary}");
        }
    }
    let (status, linux_recent) = get_json(
        &client,
        &format!("{base}/v3/summary?osname=linux&since={since}"),
    )
    .await;
    let linux_expected = phase_b
        .iter()
        .filter(|(_, document)| document["environment"]["system"]["osname"] == "linux")
        .count();
    if linux_expected == 0 {
        assert_eq!(status, 404);
    } else {
        assert_eq!(linux_recent.as_array().unwrap().len(), linux_expected);
    }
    let (status, _) = get_json(
        &client,
        &format!("{base}/v3/summary/{dist}?grade=pass&limit=1"),
    )
    .await;
    assert!(status == 200 || status == 404);

    // Bad parameters are 400 in the v3 shape; an empty list is 404 "No results found".
    for query in [
        "limit=0",
        "limit=abc",
        "since=yesterday",
        "maturity=old",
        "limit=1&limit=2",
    ] {
        let (status, body) = get_json(&client, &format!("{base}/v3/release?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["errors"][0]["message"].is_string());
    }
    let (status, _) = get_json(&client, &format!("{base}/v3/summary")).await;
    assert_eq!(status, 400);
    let (status, body) = get_json(&client, &format!("{base}/v3/release/dist/No-Such-Dist")).await;
    assert_eq!(status, 404);
    assert_eq!(body["errors"][0]["message"], "No results found");
    let (status, body) =
        get_json(&client, &format!("{base}/v3/release/dist/No-Such-Dist/1.0")).await;
    assert_eq!(
        (status, body["errors"][0]["message"].as_str()),
        (404, Some("Not found"))
    );
    let (status, limited) = get_json(
        &client,
        &format!("{base}/v3/release?limit=3&maturity=stable"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(limited.as_array().unwrap().len(), 3);

    // HTTP caching: aggregates revalidate with a weak ETag; a new report changes it.
    let response = client
        .get(format!("{base}/v3/release"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "public, max-age=60");
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    let response = client
        .get(format!("{base}/v3/release"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 304);

    // Statistics: the day totals add up to every report, per grade too.
    let (status, stats) = get_json(&client, &format!("{base}/v3/stats?period=month")).await;
    assert_eq!(status, 200);
    let mut grade_totals = [0u64; 4];
    let mut total = 0;
    for period in stats.as_array().unwrap() {
        total += period["total"].as_u64().unwrap();
        for (grade, count) in period["grade"].as_object().unwrap() {
            grade_totals[grade_index(grade)] += count.as_u64().unwrap();
        }
    }
    assert_eq!(total, ids.len() as u64);
    let mut expected_grades = [0u64; 4];
    for counts in expected.values() {
        for (index, count) in counts.iter().enumerate() {
            expected_grades[index] += count;
        }
    }
    assert_eq!(grade_totals, expected_grades);
    let (status, _) = get_json(&client, &format!("{base}/v3/stats?period=week")).await;
    assert_eq!(status, 400);

    // The tail log: newest first, in the legacy line format.
    let response = client
        .get(format!("{base}/tail/log.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("The last 1000 reports as of ")
    );
    let lines: Vec<&str> = lines.collect();
    let newest = &phase_b.last().unwrap().0;
    assert!(lines[0].contains(newest.as_str()), "{}", lines[0]);
    for line in &lines {
        let fields: Vec<&str> = line.split("] [").collect();
        assert_eq!(fields.len(), 8, "{line}");
        assert!(fields[5].starts_with("perl-v5"), "{line}");
    }
    let fixture_line = lines
        .iter()
        .find(|line| line.contains("MBHARNESS/Acme-MBHarness-Pass-0.01.tar.gz"))
        .expect("the fixture's CPAN path is in the tail");
    assert!(fixture_line.contains("[pass]"), "{fixture_line}");

    // Metrics are there and move when a report arrives.
    let metrics = crate::support::metrics_text(&client, &base).await;
    for name in [
        "reportstore_reports_ingested_total",
        "reportstore_ingest_duration_seconds",
        "reportstore_committer_flush_seconds",
        "reportstore_committer_group_size",
        "reportstore_ingest_queue_length",
        "reportstore_store_bytes_on_disk",
        "reportstore_store_logical_bytes",
        "reportstore_index_lag_entries",
        "reportstore_process_resident_bytes",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    let before = metric_value(&metrics, "reportstore_reports_ingested_total{");
    post_generated(&client, &base, &mut generator, 1).await;
    let after_text = crate::support::metrics_text(&client, &base).await;
    assert!(metric_value(&after_text, "reportstore_reports_ingested_total{") >= before + 1.0);
    // Answers are counted by status: the 201 just sent, and a 404 sent now.
    assert!(
        metric_value(
            &after_text,
            "reportstore_http_responses_total{status=\"201\"}"
        ) >= 1.0
    );
    let missing = client
        .get(format!(
            "{base}/v3/report/00000000-0000-7000-8000-000000000000"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let counted_text = crate::support::metrics_text(&client, &base).await;
    assert!(
        metric_value(
            &counted_text,
            "reportstore_http_responses_total{status=\"404\"}"
        ) > metric_value(
            &after_text,
            "reportstore_http_responses_total{status=\"404\"}"
        )
    );
    let response = client
        .get(format!("{base}/v3/release"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a new report changes the ETag");

    server.stop().await;
    let (report, consistent) = crate::support::check_store(directory.path());
    assert!(consistent, "{report}");
    let releases = report["releases"].as_u64().unwrap() as usize;
    assert!(
        releases == expected.len() || releases == expected.len() + 1,
        "{report}"
    );
}
