//! `reportstore verify URL_A URL_B`: compares two nodes' logs by digests over sequence
//! ranges, without copying data, and names the first sequence number where they differ.
//!
//! Both nodes hash their entries in blocks (`GET /replication/v1/digest`); the first block
//! that differs is fetched again one entry per block, which names the seq.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Block size of the first pass.
pub const VERIFY_BLOCK: u64 = 10_000;

#[derive(Debug, Deserialize)]
struct DigestResponse {
    last_seq: u64,
    term: u64,
    blocks: Vec<DigestBlock>,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
struct DigestBlock {
    from: u64,
    to: u64,
    sha256: String,
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VerifyReport {
    /// Node A's last seq and term.
    pub a_last_seq: u64,
    /// Node A's term.
    pub a_term: u64,
    /// Node B's last seq.
    pub b_last_seq: u64,
    /// Node B's term.
    pub b_term: u64,
    /// Entries compared (up to the shorter log).
    pub compared: u64,
    /// The first seq whose entries differ, if any.
    pub first_difference: Option<u64>,
    /// Whether the compared ranges are identical (one log may still be longer).
    pub identical: bool,
}

async fn digests(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    from: u64,
    to: u64,
    block: u64,
) -> Result<DigestResponse> {
    let url = format!(
        "{}/replication/v1/digest?from={from}&to={to}&block={block}",
        base.trim_end_matches('/')
    );
    let response = client
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|error| Error::Unavailable {
            message: format!("{base} did not answer: {error}"),
            retry_after_secs: 1,
        })?;
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        return Err(Error::Unavailable {
            message: format!("{base} answered {status}: {text}"),
            retry_after_secs: 1,
        });
    }
    response
        .json()
        .await
        .map_err(|error| Error::Internal(format!("{base} sent an unreadable digest: {error}")))
}

/// Compares the logs of two nodes.
pub async fn verify(a: &str, b: &str, token: &str) -> Result<VerifyReport> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|error| Error::Internal(format!("http client: {error}")))?;
    let head_a = digests(&client, a, token, 1, 0, 1).await?;
    let head_b = digests(&client, b, token, 1, 0, 1).await?;
    let common = head_a.last_seq.min(head_b.last_seq);
    let mut report = VerifyReport {
        a_last_seq: head_a.last_seq,
        a_term: head_a.term,
        b_last_seq: head_b.last_seq,
        b_term: head_b.term,
        compared: common,
        first_difference: None,
        identical: true,
    };
    if common == 0 {
        return Ok(report);
    }
    let blocks_a = digests(&client, a, token, 1, common, VERIFY_BLOCK)
        .await?
        .blocks;
    let blocks_b = digests(&client, b, token, 1, common, VERIFY_BLOCK)
        .await?
        .blocks;
    let Some(differing) = blocks_a
        .iter()
        .zip(&blocks_b)
        .find(|(x, y)| x != y)
        .map(|(x, _)| (x.from, x.to))
    else {
        return Ok(report);
    };
    let fine_a = digests(&client, a, token, differing.0, differing.1, 1)
        .await?
        .blocks;
    let fine_b = digests(&client, b, token, differing.0, differing.1, 1)
        .await?
        .blocks;
    report.identical = false;
    report.first_difference = fine_a
        .iter()
        .zip(&fine_b)
        .find(|(x, y)| x != y)
        .map(|(x, _)| x.from)
        .or(Some(differing.0));
    Ok(report)
}
