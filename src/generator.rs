//! Deterministic generator of realistic CPAN Testers reports.
//!
//! [`ReportGenerator`] produces an endless, reproducible stream of [`GeneratedReport`]s shaped
//! like what the real Perl clients send to the legacy Metabase API: text reports in the exact
//! layout of CPAN::Reporter ("Dear AUTHOR, This is a computer-generated report for ...") and of
//! cpanm-reporter (App::cpanminus::reporter), with the Test::Reporter preamble, `--` separators,
//! realistic `make test` / `./Build test` TAP output, prerequisite tables, environment sections,
//! toolchain versions and the `perl -V` block at the end. The structure is copied from the
//! captured requests in `shared/fixtures/metabase/`.
//!
//! It feeds the ingest, search and replication benchmarks and the zstd dictionary trainer, so the
//! sizes and the vocabulary are tuned to look like the real stream:
//!
//! - grade mix of real CPAN Testers: 75 % pass, 15 % fail, 7 % na, 3 % unknown. Grades are dealt
//!   from shuffled decks of 100, so every run of 100 reports (from the start) has exactly that mix;
//! - a pool of about 3,200 synthetic distributions with Perl-ish names (`Data-Dumper-Concise`,
//!   `Net-HTTP-Tiny`, ...), each with one to eight versions including dev releases (`1.23_01`,
//!   `1.24-TRIAL`) and a PAUSE author; popularity is Zipf-like;
//! - 320 testers, Zipf-like as well (the top five send about half of all reports), each with one
//!   to nine machines: OS (linux dominant, then freebsd, darwin, MSWin32, openbsd, netbsd, solaris,
//!   cygwin, ...) with matching `osvers`/`archname`, and a perl from 5.8.9 to 5.42.0 including
//!   devel 5.41.x/5.43.x, release candidates and patched blead strings;
//! - the v3 document of a report averages about 11 KB (pass reports about 9 KB, fail reports
//!   longer, a rare long tail of a few hundred KB).
//!
//! # Determinism
//!
//! Everything is driven by a private xoshiro256** PRNG seeded through SplitMix64. No crate RNG,
//! no hash-map iteration order and no platform-dependent float function (only `+ - * /` and
//! `sqrt`, which IEEE 754 rounds exactly) is involved, so a seed yields byte-identical output
//! forever, whatever crate versions are in use.
//!
//! The *world* (distributions, authors, testers and their machines) is built once per process
//! from a fixed internal seed and is the same for every generator; the seed given to
//! [`ReportGenerator::new`] only drives the stream of reports (which tester, which dist, which
//! grade, the test output, the ids and timestamps). So [`ReportGenerator::testers`] returns the
//! same tester list for every seed and a benchmark can register it once.
//!
//! # Output formats
//!
//! - [`GeneratedReport::to_v3_document`]: the CPAN Testers API v3 report document (what the
//!   legacy shim stored), with `environment.language.toolchain` parsed from the text report.
//! - [`GeneratedReport::to_metabase_submission`]: the exact three-level JSON body that
//!   Test::Reporter::Transport::Metabase POSTs to `/api/v1/submit/CPAN-Testers-Report`, pure
//!   ASCII, with per-report shuffled key order like Perl's hash order.
//! - [`metabase_register_body`]: the `/api/v1/register` body for a tester.
//! - [`training_samples`]: compact v3 documents for training the zstd dictionary.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde_json::{Map, Value};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Seed of the shared world (dists, authors, testers, machines). Never change it: benchmarks and
/// stored fixtures rely on the tester list staying the same.
const WORLD_SEED: u64 = 0x0C9A_4E57_7E57_E125;
/// Creation time of the first report of every stream.
const STREAM_START: OffsetDateTime = datetime!(2025-01-06 00:00:00 UTC);
/// Base of the (deterministic) profile creation times used in register bodies.
const PROFILE_EPOCH: OffsetDateTime = datetime!(2024-01-01 00:00:00 UTC);

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// A CPAN tester as the Metabase knows it: one `metabase-profile` id file.
#[derive(Debug, Clone)]
pub struct Tester {
    /// The profile's user GUID, lower-case with dashes. Also the HTTP Basic-auth user name.
    pub user_guid: String,
    /// Full name as registered (may contain non-ASCII characters).
    pub name: String,
    /// E-mail address as registered.
    pub email: String,
    /// The Metabase secret (HTTP Basic-auth password).
    pub secret: String,
}

/// Which client wrote the text report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStyle {
    /// CPAN.pm with CPAN::Reporter ("created by CPAN-Reporter-1.2018").
    CpanReporter,
    /// cpanm with cpanm-reporter ("created by App::cpanminus::reporter 0.22 (1.7046)").
    CpanmReporter,
}

/// One generated test report, with everything needed to render it in any wire format.
#[derive(Debug, Clone)]
pub struct GeneratedReport {
    /// Report GUID (a random version-4 UUID drawn from the generator's PRNG).
    pub id: Uuid,
    /// PAUSE id of the distribution's author, upper case.
    pub author: String,
    /// Distribution name, e.g. `Text-Widget`.
    pub dist: String,
    /// Distribution version, e.g. `0.07`, `1.23_01`, `1.24-TRIAL`, `v1.2.3`.
    pub version: String,
    /// Distribution file name, e.g. `Text-Widget-0.07.tar.gz`.
    pub filename: String,
    /// `"pass"`, `"fail"`, `"na"` or `"unknown"`.
    pub grade: &'static str,
    /// `$^O` of the tested perl: `linux`, `freebsd`, `darwin`, `MSWin32`, ...
    pub osname: String,
    /// `$Config{osvers}` of the tested perl.
    pub osversion: String,
    /// `$Config{archname}` of the tested perl.
    pub archname: String,
    /// Perl version without leading `v`, e.g. `5.36.0`, `5.41.3`, `5.42.0 RC1`.
    pub perl_version: String,
    /// Index of the sending tester in [`ReportGenerator::testers`].
    pub tester_index: usize,
    /// Creation time (whole seconds, UTC), advancing from a fixed start date.
    pub created: OffsetDateTime,
    /// The full text report (Test::Reporter's `textreport`).
    pub textreport: String,
    /// Which client wrote `textreport`.
    pub style: ClientStyle,
}

/// Deterministic generator of realistic CPAN Testers reports: the same seed always yields the
/// same sequence of reports.
pub struct ReportGenerator {
    world: &'static World,
    rng: Rng,
    clock: OffsetDateTime,
    deck: [u8; 100],
    deck_pos: usize,
}

impl ReportGenerator {
    /// Creates a generator whose report stream is fully determined by `seed`.
    pub fn new(seed: u64) -> Self {
        ReportGenerator {
            world: World::get(),
            rng: Rng::new(seed ^ 0x5EED_0FC9_A7E5_7E00),
            clock: STREAM_START,
            deck: [0; 100],
            deck_pos: 100,
        }
    }

    /// Generates the next report of the stream.
    pub fn next_report(&mut self) -> GeneratedReport {
        let grade_code = self.next_grade();
        let rng = &mut self.rng;
        let world = self.world;
        self.clock += Duration::seconds(rng.below(7) as i64);
        let id = random_uuid(rng);

        let tester_index = world.tester_zipf.sample(rng);
        let profile = &world.profiles[tester_index];
        let machine = &profile.machines[rng.below(profile.machines.len())];
        let dist_index = world.dist_zipf.sample(rng);
        let dist = &world.dists[dist_index];
        let version_index = pick_version(rng, dist.versions.len());
        let version = dist.versions[version_index].as_str();
        let author = &world.authors[dist.author];

        let grade = GRADES[grade_code as usize];
        let mut b = Builder::new(
            world,
            rng,
            tester_index,
            machine,
            dist,
            version,
            author,
            grade_code,
        );
        let textreport = b.build();

        let mut filename = String::with_capacity(dist.name.len() + version.len() + 10);
        filename.push_str(&dist.name);
        filename.push('-');
        filename.push_str(version);
        filename.push_str(dist.ext);

        GeneratedReport {
            id,
            author: author.pause_id.clone(),
            dist: dist.name.clone(),
            version: version.to_string(),
            filename,
            grade,
            osname: machine.osname.to_string(),
            osversion: machine.osversion.clone(),
            archname: machine.archname.clone(),
            perl_version: machine.perl.clone(),
            tester_index,
            created: self.clock,
            textreport,
            style: profile.style,
        }
    }

    /// The tester pool the generator draws from (so a benchmark can register them first).
    /// It is the same for every seed.
    pub fn testers(&self) -> &[Tester] {
        &self.world.testers
    }

    /// Deals the next grade code from a shuffled deck of 75 pass, 15 fail, 7 na, 3 unknown.
    fn next_grade(&mut self) -> u8 {
        if self.deck_pos == self.deck.len() {
            let mut i = 0;
            for (code, count) in [(0u8, 75usize), (1, 15), (2, 7), (3, 3)] {
                for _ in 0..count {
                    self.deck[i] = code;
                    i += 1;
                }
            }
            for i in (1..self.deck.len()).rev() {
                let j = self.rng.below(i + 1);
                self.deck.swap(i, j);
            }
            self.deck_pos = 0;
        }
        let g = self.deck[self.deck_pos];
        self.deck_pos += 1;
        g
    }
}

const GRADES: [&str; 4] = ["pass", "fail", "na", "unknown"];
const G_PASS: u8 = 0;
const G_FAIL: u8 = 1;
const G_NA: u8 = 2;

impl GeneratedReport {
    /// The CPAN Testers v3 document (id, created RFC3339 with Z, reporter{name,email},
    /// environment{language{name:"Perl 5", version, archname, toolchain}, system{osname,
    /// osversion}, user_agent}, distribution{name, version}, result{grade,
    /// output{uncategorized: textreport}}).
    ///
    /// `toolchain` is parsed from the report's "Perl module toolchain versions installed" table
    /// (modules shown as `n/a` are left out), like the collector's enrichment does.
    pub fn to_v3_document(&self, testers: &[Tester]) -> Value {
        let tester = &testers[self.tester_index];
        let mut reporter = Map::new();
        reporter.insert("name".into(), Value::String(tester.name.clone()));
        reporter.insert("email".into(), Value::String(tester.email.clone()));

        let mut language = Map::new();
        language.insert("name".into(), Value::String("Perl 5".into()));
        language.insert("version".into(), Value::String(self.perl_version.clone()));
        language.insert("archname".into(), Value::String(self.archname.clone()));
        let toolchain = parse_toolchain(&self.textreport);
        if !toolchain.is_empty() {
            language.insert("toolchain".into(), Value::Object(toolchain));
        }
        let mut system = Map::new();
        system.insert("osname".into(), Value::String(self.osname.clone()));
        system.insert("osversion".into(), Value::String(self.osversion.clone()));
        let mut environment = Map::new();
        environment.insert("language".into(), Value::Object(language));
        environment.insert("system".into(), Value::Object(system));
        environment.insert("user_agent".into(), Value::String(self.user_agent()));

        let mut distribution = Map::new();
        distribution.insert("name".into(), Value::String(self.dist.clone()));
        distribution.insert("version".into(), Value::String(self.version.clone()));

        let mut output = Map::new();
        output.insert(
            "uncategorized".into(),
            Value::String(self.textreport.clone()),
        );
        let mut result = Map::new();
        result.insert("grade".into(), Value::String(self.grade.into()));
        result.insert("output".into(), Value::Object(output));

        let mut doc = Map::new();
        doc.insert("id".into(), Value::String(lower_uuid(self.id)));
        doc.insert("created".into(), Value::String(timestamp(self.created)));
        doc.insert("reporter".into(), Value::Object(reporter));
        doc.insert("environment".into(), Value::Object(environment));
        doc.insert("distribution".into(), Value::Object(distribution));
        doc.insert("result".into(), Value::Object(result));
        Value::Object(doc)
    }

    /// The exact HTTP body Test::Reporter::Transport::Metabase sends to
    /// `POST /api/v1/submit/CPAN-Testers-Report` for this report.
    ///
    /// Level 1 is `{"metadata":{"core":{...}},"content":"<JSON string of [LegacyReport fact,
    /// TestSummary fact]>"}` with the eight core fields (guid = `self.id`, creator
    /// `metabase:user:<tester guid>`, resource `cpan:///distfile/AUTHOR/filename`, type,
    /// schema_version 1 and valid 1 as numbers, creation_time/update_time
    /// `YYYY-MM-DDTHH:MM:SSZ`). The inner facts have their own GUIDs, derived deterministically
    /// from `self.id`. LegacyReport's content has `perl_version` with a leading `v` and the
    /// `textreport`; TestSummary's has the same keys without `textreport`. The body is pure
    /// ASCII: every non-ASCII character is escaped as `\uXXXX` (lower-case hex, surrogate pairs)
    /// at every level, like Perl's JSON with `->ascii`. Key order is shuffled per report (as
    /// Perl's hash order is), deterministically.
    pub fn to_metabase_submission(&self, testers: &[Tester]) -> String {
        let tester = &testers[self.tester_index];
        let mut creator = String::with_capacity(50);
        creator.push_str("metabase:user:");
        creator.push_str(&tester.user_guid);
        let mut resource = String::with_capacity(40 + self.filename.len());
        resource.push_str("cpan:///distfile/");
        resource.push_str(&self.author);
        resource.push('/');
        resource.push_str(&self.filename);
        let time = timestamp(self.created);
        let id_bits = self.id.as_u128();
        let mut order = Rng::new((id_bits as u64) ^ ((id_bits >> 64) as u64) ^ 0x0EDE_1200);

        let mut perl_v = String::with_capacity(self.perl_version.len() + 1);
        perl_v.push('v');
        perl_v.push_str(&self.perl_version);
        let summary: [(&str, &str); 5] = [
            ("grade", self.grade),
            ("osname", &self.osname),
            ("osversion", &self.osversion),
            ("archname", &self.archname),
            ("perl_version", &perl_v),
        ];

        // Level 3: the facts' own contents.
        let mut legacy =
            String::with_capacity(self.textreport.len() + self.textreport.len() / 8 + 256);
        let mut fields: Vec<(&str, &str)> = summary.to_vec();
        fields.push(("textreport", &self.textreport));
        order.shuffle(&mut fields);
        push_json_object(&mut legacy, &fields);
        let mut test_summary = String::with_capacity(256);
        let mut fields: Vec<(&str, &str)> = summary.to_vec();
        order.shuffle(&mut fields);
        push_json_object(&mut test_summary, &fields);

        // Level 2: the array of the two facts.
        let legacy_guid = lower_uuid(derived_uuid(self.id, 1));
        let summary_guid = lower_uuid(derived_uuid(self.id, 2));
        let mut facts = String::with_capacity(legacy.len() + legacy.len() / 8 + 2048);
        facts.push('[');
        let core = Core {
            guid: &legacy_guid,
            creator: &creator,
            resource: &resource,
            fact_type: "CPAN-Testers-Fact-LegacyReport",
            time: &time,
        };
        push_fact(&mut facts, &core, &legacy, &mut order);
        facts.push(',');
        let core = Core {
            guid: &summary_guid,
            creator: &creator,
            resource: &resource,
            fact_type: "CPAN-Testers-Fact-TestSummary",
            time: &time,
        };
        push_fact(&mut facts, &core, &test_summary, &mut order);
        facts.push(']');

        // Level 1: the report fact.
        let report_guid = lower_uuid(self.id);
        let core = Core {
            guid: &report_guid,
            creator: &creator,
            resource: &resource,
            fact_type: "CPAN-Testers-Report",
            time: &time,
        };
        let mut body = String::with_capacity(facts.len() + facts.len() / 8 + 1024);
        push_fact(&mut body, &core, &facts, &mut order);
        body
    }

    /// The `environment.user_agent` string matching the client named in the text report.
    fn user_agent(&self) -> String {
        let v = client_versions(self.tester_index);
        match self.style {
            ClientStyle::CpanReporter => format!("CPAN-Reporter/{}", v.cpan_reporter),
            ClientStyle::CpanmReporter => format!("App-cpanminus-reporter/{}", v.cpanm_reporter),
        }
    }
}

/// The POST /api/v1/register body for a tester: a JSON array [Metabase-User-Profile fact
/// (content = JSON string of [FullName fact, EmailAddress fact]), Metabase-User-Secret fact
/// (content = the secret)], exactly like `first-contact-03-register.json`.
///
/// As with the real client, the name, e-mail and secret are "String facts" whose content is
/// UTF-8 *encoded* before the JSON encoding, so a non-ASCII character appears as one `\u00XX`
/// escape per UTF-8 byte ("Zoë" → `Zo\u00c3\u00ab`); decode by mapping each character to a
/// byte and UTF-8-decoding the result. GUIDs of the inner facts and the creation time are
/// derived deterministically from the tester's GUID.
pub fn metabase_register_body(tester: &Tester) -> String {
    let user = Uuid::parse_str(&tester.user_guid).unwrap_or_else(|_| Uuid::from_u128(0));
    let mut creator = String::with_capacity(50);
    creator.push_str("metabase:user:");
    creator.push_str(&tester.user_guid);
    let bits = user.as_u128();
    let offset = (mix64(bits as u64 ^ (bits >> 64) as u64) % (300 * 86_400)) as i64;
    let time = timestamp(PROFILE_EPOCH + Duration::seconds(offset));
    let mut order = Rng::new(bits as u64 ^ 0x9E61_57E2);

    let name_guid = lower_uuid(derived_uuid(user, 11));
    let email_guid = lower_uuid(derived_uuid(user, 12));
    let secret_guid = lower_uuid(derived_uuid(user, 13));
    let name = utf8_bytes_as_latin1(&tester.name);
    let email = utf8_bytes_as_latin1(&tester.email);
    let secret = utf8_bytes_as_latin1(&tester.secret);

    let mut inner = String::with_capacity(1024);
    inner.push('[');
    let core = Core {
        guid: &name_guid,
        creator: &creator,
        resource: &creator,
        fact_type: "Metabase-User-FullName",
        time: &time,
    };
    push_fact(&mut inner, &core, &name, &mut order);
    inner.push(',');
    let core = Core {
        guid: &email_guid,
        creator: &creator,
        resource: &creator,
        fact_type: "Metabase-User-EmailAddress",
        time: &time,
    };
    push_fact(&mut inner, &core, &email, &mut order);
    inner.push(']');

    let mut body = String::with_capacity(2048);
    body.push('[');
    let core = Core {
        guid: &tester.user_guid,
        creator: &creator,
        resource: &creator,
        fact_type: "Metabase-User-Profile",
        time: &time,
    };
    push_fact(&mut body, &core, &inner, &mut order);
    body.push(',');
    let core = Core {
        guid: &secret_guid,
        creator: &creator,
        resource: &creator,
        fact_type: "Metabase-User-Secret",
        time: &time,
    };
    push_fact(&mut body, &core, &secret, &mut order);
    body.push(']');
    body
}

/// Samples for training the zstd dictionary: the v3 documents serialized with
/// `serde_json::to_vec` (compact).
pub fn training_samples(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut generator = ReportGenerator::new(seed);
    (0..count)
        .map(|_| {
            let report = generator.next_report();
            serde_json::to_vec(&report.to_v3_document(generator.testers()))
                .expect("serializing a serde_json::Value cannot fail")
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// PRNG and sampling
// ---------------------------------------------------------------------------------------------

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser: a good 64-bit mixing function.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** seeded through SplitMix64. Small, fast, and fully specified, so its output
/// never changes.
#[derive(Clone, Debug)]
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut s = [0u64; 4];
        for v in &mut s {
            x = x.wrapping_add(GOLDEN_GAMMA);
            *v = mix64(x);
        }
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s }
    }

    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; `n` must be > 0).
    fn below_u64(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `0..n` (`n` must be > 0).
    fn below(&mut self, n: usize) -> usize {
        self.below_u64(n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `permille / 1000`.
    fn chance(&mut self, permille: u32) -> bool {
        self.below(1000) < permille as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn pick_str<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// Harmonic-ish skew towards the front of a list: cheap and good enough for vocabulary.
    fn skewed(&mut self, n: usize) -> usize {
        let k = self.below(n);
        self.below(k + 1)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

fn random_uuid(rng: &mut Rng) -> Uuid {
    let bits = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
    uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid()
}

/// A version-4 UUID derived deterministically from another one and a salt.
fn derived_uuid(base: Uuid, salt: u64) -> Uuid {
    let v = base.as_u128();
    let hi = mix64((v >> 64) as u64 ^ salt.wrapping_mul(GOLDEN_GAMMA));
    let lo = mix64(v as u64 ^ hi ^ salt.rotate_left(29));
    let bits = (u128::from(hi) << 64) | u128::from(lo);
    uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid()
}

fn lower_uuid(id: Uuid) -> String {
    let mut buf = Uuid::encode_buffer();
    id.hyphenated().encode_lower(&mut buf).to_string()
}

/// Cumulative weight table sampled by binary search: integer arithmetic only at sample time.
struct Weighted {
    cum: Vec<u64>,
}

impl Weighted {
    fn new(weights: impl IntoIterator<Item = u64>) -> Weighted {
        let mut total = 0u64;
        let cum = weights
            .into_iter()
            .map(|w| {
                total += w.max(1);
                total
            })
            .collect();
        Weighted { cum }
    }

    /// Zipf-like table: rank `i` has weight `1 / (i + offset)^(quarters / 4)`.
    /// Only `sqrt` and products are used, which IEEE 754 rounds exactly, so the table is
    /// identical on every platform.
    fn zipf(n: usize, offset: f64, quarters: u32) -> Weighted {
        Weighted::new((0..n).map(|i| {
            let base = i as f64 + offset;
            let q = base.sqrt().sqrt();
            let mut p = 1.0f64;
            for _ in 0..quarters {
                p *= q;
            }
            (1.0e12 / p) as u64
        }))
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let total = *self.cum.last().expect("weight table is never empty");
        let x = rng.below_u64(total);
        self.cum.partition_point(|&c| c <= x)
    }
}

/// Picks the index of the tested version: the latest release gets most of the reports.
fn pick_version(rng: &mut Rng, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let r = rng.below(100);
    if r < 58 {
        n - 1
    } else if r < 78 {
        n - 2
    } else {
        rng.below(n)
    }
}

// ---------------------------------------------------------------------------------------------
// Small text helpers (no `format!` in the hot path)
// ---------------------------------------------------------------------------------------------

fn push_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(b as char);
    }
}

fn push_usize(out: &mut String, n: usize) {
    push_u64(out, n as u64);
}

fn num(n: usize) -> String {
    let mut s = String::with_capacity(8);
    push_usize(&mut s, n);
    s
}

/// Left-aligned field of `width` characters (like Perl's `%-Ns`).
fn push_padded(out: &mut String, text: &str, width: usize) {
    out.push_str(text);
    for _ in text.chars().count()..width {
        out.push(' ');
    }
}

/// Right-aligned field of `width` characters (like Perl's `%Ns`).
fn push_right(out: &mut String, text: &str, width: usize) {
    for _ in text.len()..width {
        out.push(' ');
    }
    out.push_str(text);
}

/// `%5.2f` of a value given in hundredths.
fn push_centis(out: &mut String, centis: u64) {
    let mut s = String::with_capacity(8);
    push_u64(&mut s, centis / 100);
    s.push('.');
    let frac = centis % 100;
    s.push((b'0' + (frac / 10) as u8) as char);
    s.push((b'0' + (frac % 10) as u8) as char);
    push_right(out, &s, 5);
}

fn push_hex(out: &mut String, mut n: u64, min_digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = HEX[(n & 15) as usize];
        n >>= 4;
        if n == 0 && buf.len() - i >= min_digits {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(b as char);
    }
}

fn push_two(out: &mut String, n: u32) {
    out.push((b'0' + (n / 10 % 10) as u8) as char);
    out.push((b'0' + (n % 10) as u8) as char);
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn timestamp(t: OffsetDateTime) -> String {
    let mut s = String::with_capacity(20);
    push_u64(&mut s, t.year() as u64);
    s.push('-');
    push_two(&mut s, u32::from(u8::from(t.month())));
    s.push('-');
    push_two(&mut s, u32::from(t.day()));
    s.push('T');
    push_two(&mut s, u32::from(t.hour()));
    s.push(':');
    push_two(&mut s, u32::from(t.minute()));
    s.push(':');
    push_two(&mut s, u32::from(t.second()));
    s.push('Z');
    s
}

/// Each UTF-8 byte as one Latin-1 character: what Perl's "String facts" put into JSON.
fn utf8_bytes_as_latin1(s: &str) -> String {
    s.bytes().map(char::from).collect()
}

// ---------------------------------------------------------------------------------------------
// ASCII JSON writer (Perl JSON ->ascii), used for the Metabase wire formats
// ---------------------------------------------------------------------------------------------

fn push_u_escape(out: &mut String, unit: u32) {
    out.push_str("\\u");
    push_hex(out, u64::from(unit), 4);
}

/// Appends `s` as a JSON string literal, pure ASCII.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut run_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if (0x20..0x80).contains(&b) && b != b'"' && b != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(&s[run_start..i]);
        if b < 0x80 {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                0x08 => out.push_str("\\b"),
                0x0c => out.push_str("\\f"),
                _ => push_u_escape(out, u32::from(b)),
            }
            i += 1;
        } else {
            let ch = s[i..].chars().next().expect("valid UTF-8 boundary");
            let c = ch as u32;
            if c >= 0x10000 {
                let v = c - 0x10000;
                push_u_escape(out, 0xD800 + (v >> 10));
                push_u_escape(out, 0xDC00 + (v & 0x3FF));
            } else {
                push_u_escape(out, c);
            }
            i += ch.len_utf8();
        }
        run_start = i;
    }
    out.push_str(&s[run_start..]);
    out.push('"');
}

/// A flat JSON object of string values, in the given key order.
fn push_json_object(out: &mut String, fields: &[(&str, &str)]) {
    out.push('{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, k);
        out.push(':');
        push_json_string(out, v);
    }
    out.push('}');
}

/// Core metadata of a Metabase fact.
struct Core<'a> {
    guid: &'a str,
    creator: &'a str,
    resource: &'a str,
    fact_type: &'a str,
    time: &'a str,
}

/// Appends a serialized fact `{"metadata":{"core":{...}},"content":"..."}`; `content` is
/// written as a JSON string. Key order is shuffled with `order`, like Perl's hash order.
fn push_fact(out: &mut String, core: &Core<'_>, content: &str, order: &mut Rng) {
    let mut keys: [u8; 8] = [0, 1, 2, 3, 4, 5, 6, 7];
    order.shuffle(&mut keys);
    let metadata_first = order.below(2) == 0;
    out.push('{');
    if !metadata_first {
        out.push_str("\"content\":");
        push_json_string(out, content);
        out.push(',');
    }
    out.push_str("\"metadata\":{\"core\":{");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match k {
            0 => {
                out.push_str("\"guid\":");
                push_json_string(out, core.guid);
            }
            1 => {
                out.push_str("\"creator\":");
                push_json_string(out, core.creator);
            }
            2 => {
                out.push_str("\"resource\":");
                push_json_string(out, core.resource);
            }
            3 => {
                out.push_str("\"type\":");
                push_json_string(out, core.fact_type);
            }
            4 => out.push_str("\"schema_version\":1"),
            5 => out.push_str("\"valid\":1"),
            6 => {
                out.push_str("\"creation_time\":");
                push_json_string(out, core.time);
            }
            _ => {
                out.push_str("\"update_time\":");
                push_json_string(out, core.time);
            }
        }
    }
    out.push_str("}}");
    if metadata_first {
        out.push_str(",\"content\":");
        push_json_string(out, content);
    }
    out.push('}');
}

/// Reads the "Perl module toolchain versions installed" table back out of a text report.
fn parse_toolchain(text: &str) -> Map<String, Value> {
    let mut map = Map::new();
    const HEAD: &str = "Perl module toolchain versions installed:\n\n";
    let Some(pos) = text.find(HEAD) else {
        return map;
    };
    let mut lines = text[pos + HEAD.len()..].lines();
    // Header and ruler.
    lines.next();
    lines.next();
    for line in lines {
        if !line.starts_with("    ") {
            break;
        }
        let mut parts = line.split_whitespace();
        let (Some(name), Some(have)) = (parts.next(), parts.next()) else {
            break;
        };
        if have != "n/a" {
            map.insert(name.to_string(), Value::String(have.to_string()));
        }
    }
    map
}

// ---------------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------------

/// First components of distribution names, most common first.
#[rustfmt::skip]
const NS_TOP: &[&str] = &[
    "Data", "Test", "App", "Net", "Text", "Dist-Zilla-Plugin", "Mojolicious-Plugin", "File",
    "HTTP", "DBIx", "MooseX", "Web", "Catalyst", "Config", "Log", "Math", "Time", "Date",
    "DateTime", "JSON", "XML", "IO", "Template", "Crypt", "Devel", "Module", "Class", "Plack-Middleware",
    "Dancer2-Plugin", "String", "List", "Hash", "Array", "Acme", "Alien", "WWW", "Type", "Types",
    "Lingua", "Geo", "Image", "Graphics", "Audio", "Business", "Finance", "Bio", "AnyEvent",
    "POE-Component", "IO-Async", "Sys", "Unix", "Win32", "Term", "Tie", "Locale", "Encode",
    "Email", "Mail", "MIME", "Protocol", "CGI", "Apache2", "Perl", "PPI", "Pod", "Regexp",
    "Search", "Statistics", "Task", "Router", "Redis", "Cache", "Compress", "Archive", "Parse",
    "Set", "Sort", "Tree", "Graph", "Event", "Future", "Promise", "SQL", "OpenAPI", "Object",
    "Role", "Params", "Getopt", "Convert", "Authen", "Media", "Game", "Chart", "Spreadsheet",
    "PDF", "HTML", "CSS", "URI", "LWP", "Socket", "Proc", "IPC", "Number", "Scalar", "Sub",
    "Variable", "Exporter", "Attribute", "Benchmark", "Queue", "Message", "Mojo", "Database",
    "Memoize", "Hook", "Filter", "MooX", "Moose", "YAML", "Digest", "Algorithm", "Tk", "Gtk3",
    "Net-Amazon", "Net-Google", "Net-DNS", "Net-SSH", "Net-LDAP", "Paws", "Docker", "Git",
    "GitHub", "Kubernetes", "Storable", "Signal", "Thread", "Ref", "Symbol", "Carp", "Syntax",
    "Keyword", "Dev", "Security", "Password", "Bundle", "Catalyst-Plugin", "Catalyst-View",
];

/// Middle components of distribution names.
#[rustfmt::skip]
const NS_MID: &[&str] = &[
    "Simple", "Util", "Dumper", "Client", "Parser", "Any", "Base", "Server", "Writer", "Reader",
    "Validator", "Compare", "Printer", "Serializer", "Encoder", "Decoder", "Stream", "Pool",
    "Manager", "Builder", "Factory", "Helper", "Wrapper", "Object", "Table", "Schema", "Query",
    "Format", "Loader", "Declare", "Plugin", "Role", "CSV", "HTTP", "DNS", "SMTP", "IMAP",
    "LDAP", "SSH", "FTP", "Cron", "Daemon", "Agent", "Session", "Cookie", "Auth", "Token",
    "OAuth2", "JWT", "UUID", "Random", "Tree", "Graph", "Matrix", "Vector", "Color", "Font",
    "Unicode", "Zone", "Duration", "Calendar", "Holiday", "Money", "Currency", "Invoice", "IP",
    "Ping", "Whois", "Tail", "Watch", "Diff", "Patch", "Merge", "Cache", "Retry", "Throttle",
    "Timer", "Fork", "Worker", "Job", "Task", "Event", "Hook", "Trigger", "Dispatch", "Router",
    "Request", "Response", "Headers", "Render", "View", "Model", "Controller", "Form", "Field",
    "Widget", "Menu", "Grid", "Report", "Export", "Import", "Sync", "Mirror", "Backup", "Zip",
    "Tar", "Gzip", "Base64", "Hex", "Bits", "Bytes", "Buffer", "Handle", "Pipe", "Shell",
    "Command", "Run", "Exec", "Spawn", "Config", "Env", "Path", "Find", "Temp", "Slurp", "Lock",
    "Mock", "Deep", "Differences", "Warnings", "Exception", "Fatal", "Output", "Harness", "Spec",
    "Class", "Accessor", "Attribute", "Types", "Constraint", "Coerce", "Tiny", "Lite", "Fast",
    "Markdown", "Template", "Mustache", "Pager", "Sitemap", "Feed", "RSS", "Atom", "Geo",
    "Address", "Phone", "Name", "Person", "Country", "Language", "Stemmer", "Tokenizer", "Index",
];

/// Optional last components.
#[rustfmt::skip]
const NS_SUFFIX: &[&str] = &[
    "XS", "Tiny", "Lite", "PP", "Simple", "Fast", "Any", "Compat", "Extended", "Concise",
    "Strict", "Lazy", "More", "Mini", "Sugar", "Util", "Utils", "Moose", "Moo", "Declare",
];

#[rustfmt::skip]
const FIRST_NAMES: &[&str] = &[
    "Andreas", "Chris", "Slaven", "David", "James", "John", "Michael", "Peter", "Paul", "Mark",
    "Robert", "Thomas", "Daniel", "Martin", "Jens", "Stefan", "Alexander", "Christian", "Olivier",
    "Sébastien", "José", "Søren", "Łukasz", "Zoë", "François", "Jürgen", "Ævar", "Håkon",
    "Tatsuhiko", "Kentaro", "Yuki", "Mohammad", "Ricardo", "Joaquín", "Gábor", "Tomáš", "Dave",
    "Karen", "Ruth", "Julia", "Elizabeth", "Jessica", "Anne", "Maria", "Lisa", "Helen", "Nicola",
    "Olaf", "Leon", "Toby", "Matt", "Steven", "Ingy", "Reini", "Breno", "Graham", "Sawyer", "Neil",
    "Ken", "Shawn", "Ron", "Chad", "Yanick", "Salvador", "Dominique", "Cédric", "Renée", "Björn",
    "Mikko", "Väinö", "Ørjan", "Nikolai", "Sergey", "Dmitri", "Ivan", "Wei", "Jun", "Hiro",
];

#[rustfmt::skip]
const LAST_NAMES: &[&str] = &[
    "König", "Rezić", "Williams", "Golden", "Keenan", "Smith", "Jones", "Brown", "Miller",
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann",
    "Dubois", "Martin", "Bernard", "Lefèvre", "García", "Fernández", "Núñez", "Ødegaard",
    "Kowalski", "Nowak", "Wiśniewski", "Szabó", "Novák", "Dvořák", "Yamada", "Tanaka", "Suzuki",
    "Nakamura", "Kato", "Chen", "Wang", "Li", "Zhang", "Kim", "Park", "Ivanov", "Petrov",
    "Smirnov", "Johansson", "Andersson", "Nielsen", "Hansen", "Larsen", "Virtanen", "Korhonen",
    "O'Brien", "McDonald", "Fraser", "Campbell", "Stewart", "Taylor", "Wilson", "Evans",
    "Thomas", "Roberts", "Walker", "Wright", "Thompson", "White", "Harris", "Clark", "Lewis",
    "Robinson", "Wood", "Hall", "Green", "Adams", "Baker", "Turner", "Hill", "Moore", "Young",
    "Cook", "Rogers", "Morgan", "Bell", "Murphy", "Bailey", "Cooper", "Richardson", "Cox",
];

#[rustfmt::skip]
const PAUSE_SYLLABLES: &[&str] = &[
    "ZA", "BE", "KI", "MO", "RU", "TO", "NA", "SHI", "DA", "GO", "ETH", "ER", "RJ", "BS", "PER",
    "LX", "OX", "EL", "AN", "TI", "VE", "XO", "QU", "FI", "LU", "MI", "JO", "HA", "YO", "WU",
];

#[rustfmt::skip]
const EMAIL_DOMAINS: &[&str] = &[
    "cpan.org", "example.org", "example.com", "example.net", "smoke.example.org",
    "testers.example.net", "mail.example.de", "perl.example.jp",
];

#[rustfmt::skip]
const TESTER_COMMENTS: &[&str] = &[
    "Tested on a Raspberry Pi 4 (8 GB) running Raspberry Pi OS.",
    "Smoke tested with CPAN::Reporter::Smoker on a dedicated VM.",
    "Automated testing with perlbrew-managed perls; please contact me if this report looks wrong.",
    "This machine runs with PERL_USE_UNSAFE_INC=0.",
    "Tested in a clean local::lib with only core modules preinstalled.",
    "Report generated on a FreeBSD jail.",
];

/// Words used in test file names (`t/02-<word>.t`), most common first.
#[rustfmt::skip]
const TEST_WORDS: &[&str] = &[
    "basic", "load", "new", "api", "parse", "methods", "errors", "config", "utf8", "edge-cases",
    "object", "accessors", "export", "simple", "roundtrip", "encode", "decode", "unicode",
    "options", "defaults", "types", "validate", "file", "io", "regression", "compat", "stream",
    "format", "escape", "dates", "timezone", "locale", "sort", "filter", "hooks", "plugins",
    "roles", "inheritance", "overload", "stringify", "compare", "clone", "serialize", "json",
    "xml", "yaml", "cli", "app", "cache", "timeout", "retry", "async", "callbacks", "events",
    "fork", "signals", "threads", "leaks", "memory", "large", "empty", "undef", "warnings",
    "exceptions", "die", "bugs", "rt-12345", "gh-42", "issue-17", "synopsis", "examples",
    "constants", "import", "subclass", "attributes", "lazy", "triggers", "coerce", "schema",
    "sql", "dbi", "sqlite", "connect", "request", "response", "headers", "cookies", "redirect",
    "query", "path", "url", "template", "render", "escape-html", "base64", "digest", "random",
];

const _: () = assert!(
    TEST_WORDS.len() <= 128,
    "test_files tracks used words in a u128"
);

/// Phrases used as test names in failure diagnostics, most common first.
#[rustfmt::skip]
const TEST_NAMES: &[&str] = &[
    "basic usage", "constructor returns object", "isa check", "can call methods",
    "parses simple input", "output matches", "round trip", "handles undef", "no warnings",
    "dies on invalid input", "error message matches", "returns expected hash",
    "correct number of rows", "returns expected list", "stringification", "numeric comparison",
    "sorted output", "utf8 round trip", "encoding preserved", "parses empty string",
    "file created", "file content", "config loaded", "default values", "override defaults",
    "accessor works", "setter works", "chained calls", "clone is deep", "equality",
    "json output", "xml output", "escaped correctly", "timeout respected", "retry count",
    "connect ok", "response code", "headers parsed", "cookie set", "redirect followed",
    "query string", "date parsed", "time zone offset", "epoch conversion", "duration formatting",
    "leap year", "sprintf format", "number of elements", "first element", "last element",
    "hash keys", "nested structure", "schema validation", "type constraint", "coercion",
    "role applied", "method modifiers", "lazy attribute built", "trigger fired",
    "plugin loaded", "callback called", "event emitted", "exit code", "stdout captured",
    "stderr captured", "command line parsed", "help text", "version string", "pod coverage",
    "matches pattern", "split result", "join result", "checksum", "digest matches",
    "compressed size", "decompressed data", "same result twice", "cache hit", "cache miss",
    "expired entry removed", "queue length", "transaction committed", "rollback works",
    "insert ok", "select ok", "update ok", "delete ok", "prepare ok", "execute ok",
    "template rendered", "variable interpolated", "escape html", "url encoded",
    "base64 decoded", "hex digest", "overflow check", "big number", "float precision",
    "rounding", "negative numbers", "empty list", "large input", "missing file",
    "relative path", "absolute path", "tempdir cleaned up", "locale independent",
];

/// Method names used in error messages.
#[rustfmt::skip]
const METHODS: &[&str] = &[
    "new", "parse", "render", "to_string", "as_hash", "load", "save", "get", "set", "add",
    "remove", "run", "execute", "connect", "fetch", "build", "validate", "encode", "decode",
    "compile", "format", "clone", "merge", "find", "search", "insert", "update", "delete",
    "commit", "call", "dispatch", "emit", "start", "stop", "process", "handle", "dump", "write",
    "read", "open", "close", "next", "reset", "init", "register", "resolve", "apply",
    "transform", "serialize", "deserialize", "compare", "filter", "name", "value", "id",
];

/// Words for generated strings in got/expected diagnostics.
#[rustfmt::skip]
const VALUE_WORDS: &[&str] = &[
    "foo", "bar", "baz", "hello world", "OK", "error", "default", "test", "example", "value",
    "admin", "localhost", "utf-8", "text/plain", "application/json", "GET", "POST", "true",
    "false", "null", "none", "yes", "no", "alpha", "beta", "release", "1.0", "2024-01-01",
    "Europe/London", "America/New_York", "UTC", "en_US", "de_DE", "/tmp/test", "index.html",
    "café", "naïve", "Ünïcödé", "日本語", "Ελληνικά", "Привет",
];

/// Modules that commonly show up in prerequisites: (name, versions oldest first).
#[rustfmt::skip]
const COMMON_MODULES: &[(&str, &[&str])] = &[
    ("Test::More", &["0.88", "0.96", "0.98", "1.001014", "1.302073", "1.302133", "1.302175", "1.302190", "1.302199", "1.302207"]),
    ("Carp", &["1.26", "1.38", "1.42", "1.50", "1.52", "1.54"]),
    ("Scalar::Util", &["1.27", "1.45", "1.50", "1.55", "1.63", "1.68"]),
    ("List::Util", &["1.27", "1.33", "1.45", "1.50", "1.55", "1.63", "1.68"]),
    ("Exporter", &["5.57", "5.70", "5.72", "5.74", "5.77", "5.78"]),
    ("strict", &["0", "1.04", "1.11", "1.12", "1.13"]),
    ("warnings", &["0", "1.13", "1.44", "1.58", "1.70"]),
    ("Moo", &["1.006001", "2.000000", "2.003004", "2.004004", "2.005005"]),
    ("Try::Tiny", &["0.22", "0.28", "0.30", "0.31", "0.32"]),
    ("Moose", &["2.1005", "2.2011", "2.2015", "2.2206", "2.2207"]),
    ("namespace::clean", &["0.24", "0.27"]),
    ("namespace::autoclean", &["0.20", "0.28", "0.29", "0.31"]),
    ("Type::Tiny", &["1.000005", "1.004004", "1.012004", "2.002001", "2.004000", "2.006000"]),
    ("Types::Standard", &["1.000005", "1.004004", "1.012004", "2.002001", "2.004000", "2.006000"]),
    ("JSON::MaybeXS", &["1.003005", "1.004003", "1.004005", "1.004008"]),
    ("Path::Tiny", &["0.062", "0.104", "0.118", "0.144", "0.146"]),
    ("HTTP::Tiny", &["0.025", "0.056", "0.076", "0.080", "0.088", "0.090"]),
    ("File::Spec", &["3.40", "3.75", "3.84", "3.88", "3.90"]),
    ("File::Temp", &["0.22", "0.2304", "0.2309", "0.2311"]),
    ("Data::Dumper", &["2.145", "2.167", "2.174", "2.183", "2.188", "2.189"]),
    ("Encode", &["2.98", "3.08", "3.17", "3.19", "3.21"]),
    ("Storable", &["2.56", "3.15", "3.26", "3.32"]),
    ("Params::Util", &["1.07", "1.101", "1.102"]),
    ("Sub::Quote", &["2.003001", "2.005005", "2.006008"]),
    ("Role::Tiny", &["1.003004", "2.000001", "2.001004", "2.002004"]),
    ("Class::Method::Modifiers", &["1.09", "2.13", "2.15"]),
    ("Module::Runtime", &["0.012", "0.014", "0.016", "0.018"]),
    ("Getopt::Long", &["2.39", "2.49", "2.52", "2.54", "2.58"]),
    ("Pod::Usage", &["1.63", "1.69", "2.01", "2.03", "2.05"]),
    ("Time::HiRes", &["1.9725", "1.9759", "1.9764", "1.9770", "1.9775"]),
    ("Time::Local", &["1.2300", "1.28", "1.30", "1.35"]),
    ("POSIX", &["0", "1.38_03", "1.76", "1.94", "2.13", "2.20"]),
    ("DateTime", &["1.04", "1.50", "1.59", "1.65", "1.66"]),
    ("DBI", &["1.628", "1.636", "1.641", "1.643", "1.645", "1.647"]),
    ("DBD::SQLite", &["1.54", "1.66", "1.72", "1.74", "1.76"]),
    ("URI", &["1.60", "1.71", "5.10", "5.19", "5.21", "5.28", "5.31"]),
    ("LWP::UserAgent", &["5.835", "6.15", "6.52", "6.67", "6.77", "6.78"]),
    ("IO::Socket::SSL", &["1.952", "2.066", "2.083", "2.085", "2.088", "2.089"]),
    ("Mojolicious", &["7.94", "8.73", "9.22", "9.35", "9.38", "9.39"]),
    ("Plack", &["1.0039", "1.0047", "1.0048", "1.0050", "1.0051"]),
    ("YAML::Tiny", &["1.64", "1.69", "1.73", "1.74", "1.76"]),
    ("XML::LibXML", &["2.0128", "2.0134", "2.0208", "2.0209", "2.0210"]),
    ("Log::Any", &["1.049", "1.705", "1.710", "1.715", "1.717"]),
    ("Template", &["2.26", "2.27", "3.009", "3.101", "3.102"]),
    ("Cpanel::JSON::XS", &["3.0115", "4.19", "4.32", "4.37", "4.38"]),
    ("Text::CSV_XS", &["1.30", "1.44", "1.50", "1.56", "1.57", "1.60"]),
    ("Digest::SHA", &["5.84", "5.95", "6.02", "6.04"]),
    ("MIME::Base64", &["3.13", "3.15", "3.16"]),
    ("Clone", &["0.38", "0.41", "0.45", "0.46", "0.47"]),
    ("Sub::Name", &["0.21", "0.26", "0.27", "0.28"]),
    ("Devel::GlobalDestruction", &["0.13", "0.14"]),
    ("Future", &["0.38", "0.47", "0.49", "0.50", "0.51"]),
    ("IO::Async", &["0.75", "0.78", "0.801", "0.802", "0.804"]),
    ("AnyEvent", &["7.14", "7.17"]),
    ("XSLoader", &["0.14", "0.22", "0.30", "0.32"]),
];

/// Test-only prerequisites: (name, versions oldest first).
#[rustfmt::skip]
const TEST_MODULES: &[(&str, &[&str])] = &[
    ("Test::More", &["0.88", "0.96", "0.98", "1.001014", "1.302073", "1.302133", "1.302175", "1.302190", "1.302199", "1.302207"]),
    ("Test::Fatal", &["0.010", "0.014", "0.016", "0.017"]),
    ("Test::Deep", &["0.110", "0.119", "1.128", "1.130", "1.204"]),
    ("Test::Exception", &["0.40", "0.43"]),
    ("Test::Warnings", &["0.026", "0.030", "0.031", "0.033", "0.038"]),
    ("Test2::V0", &["0.000111", "0.000139", "0.000155", "0.000159", "0.000163"]),
    ("Test::Differences", &["0.64", "0.67", "0.69", "0.71"]),
    ("Test::Requires", &["0.06", "0.10", "0.11"]),
    ("Test::MockModule", &["0.170", "0.176", "0.177", "0.178"]),
    ("Test::Warn", &["0.30", "0.36", "0.37"]),
    ("Test::NoWarnings", &["1.04", "1.06"]),
    ("Test::Output", &["1.031", "1.033", "1.034", "1.036"]),
    ("File::Temp", &["0.22", "0.2304", "0.2309", "0.2311"]),
    ("Capture::Tiny", &["0.36", "0.46", "0.48", "0.50"]),
];

/// (module, versions by toolchain era 0..=12).
#[rustfmt::skip]
const TOOLCHAIN: &[(&str, &[&str; 13])] = &[
    ("CPAN", &["1.9402", "1.9600", "1.9800", "2.05", "2.10", "2.16", "2.18", "2.20", "2.27", "2.28", "2.33", "2.36", "2.38"]),
    ("CPAN::Meta", &["2.110440", "2.110440", "2.120921", "2.133380", "2.142690", "2.150005", "2.150010", "2.150010", "2.150010", "2.150010", "2.150010", "2.150010", "2.150010"]),
    ("Cwd", &["3.29", "3.31", "3.33", "3.40", "3.47", "3.62", "3.74", "3.75", "3.78", "3.80", "3.84", "3.89", "3.94"]),
    ("ExtUtils::CBuilder", &["0.2602", "0.27", "0.280202", "0.280216", "0.280221", "0.280225", "0.280230", "0.280231", "0.280234", "0.280236", "0.280238", "0.280240", "0.280242"]),
    ("ExtUtils::Command", &["1.16", "1.17", "1.18", "1.18", "7.04", "7.24", "7.34", "7.44", "7.46", "7.62", "7.64", "7.70", "7.76"]),
    ("ExtUtils::Install", &["1.52", "1.54", "1.58", "1.59", "1.67", "2.04", "2.14", "2.14", "2.20", "2.20", "2.20", "2.22", "2.22"]),
    ("ExtUtils::MakeMaker", &["6.48", "6.56", "6.57_05", "6.63_02", "6.66", "7.04", "7.24", "7.34", "7.44", "7.62", "7.64", "7.70", "7.76"]),
    ("ExtUtils::Manifest", &["1.55", "1.56", "1.57", "1.61", "1.63", "1.70", "1.72", "1.72", "1.73", "1.73", "1.73", "1.75", "1.75"]),
    ("ExtUtils::ParseXS", &["2.18", "2.2002", "2.2210", "3.16", "3.24", "3.31", "3.35", "3.39", "3.40", "3.44", "3.45", "3.51", "3.57"]),
    ("File::Spec", &["3.29", "3.31", "3.33", "3.40", "3.47", "3.62", "3.74", "3.75", "3.78", "3.80", "3.84", "3.89", "3.94"]),
    ("JSON", &["2.15", "2.53", "2.90", "2.90", "2.97001", "4.02", "4.02", "4.03", "4.07", "4.07", "4.10", "4.10", "4.10"]),
    ("JSON::PP", &["2.27200", "2.27200", "2.27200", "2.27202", "2.27203", "2.27300", "2.97001", "4.02", "4.04", "4.06", "4.07", "4.16", "4.16"]),
    ("Module::Build", &["0.340201", "0.3603", "0.3800", "0.4003", "0.4205", "0.4220", "0.4224", "0.4224", "0.4231", "0.4231", "0.4232", "0.4234", "0.4234"]),
    ("Module::Signature", &["0.55", "0.61", "0.66", "0.73", "0.79", "0.81", "0.83", "0.83", "0.87", "0.88", "0.88", "0.89", "0.93"]),
    ("Parse::CPAN::Meta", &["1.39", "1.40", "1.4401", "1.4404", "1.4414", "1.4417", "2.150005", "2.150010", "2.150010", "2.150010", "2.150010", "2.150010", "2.150010"]),
    ("Test::Harness", &["3.14", "3.17", "3.23", "3.26", "3.33", "3.36", "3.42", "3.42", "3.43_02", "3.43_05", "3.44", "3.48", "3.50"]),
    ("Test::More", &["0.86", "0.94", "0.98", "0.98", "1.001002", "1.001014", "1.302073", "1.302133", "1.302162", "1.302183", "1.302190", "1.302199", "1.302210"]),
    ("YAML", &["0.68", "0.71", "0.84", "0.84", "1.15", "1.24", "1.24", "1.26", "1.30", "1.30", "1.30", "1.31", "1.31"]),
    ("YAML::Syck", &["1.05", "1.07", "1.19", "1.27", "1.29", "1.29", "1.30", "1.31", "1.32", "1.32", "1.34", "1.34", "1.36"]),
    ("version", &["0.76", "0.77", "0.88", "0.9902", "0.9909", "0.9916", "0.9918", "0.9923", "0.9924", "0.9928", "0.9929", "0.9930", "0.9933"]),
];

/// Reasons printed by harness for skipped test files.
#[rustfmt::skip]
const SKIP_REASONS: &[&str] = &[
    "Author tests not required for installation",
    "these tests are for release candidate testing",
    "these tests are for testing by the author",
    "Test::Pod 1.22 required for testing POD",
    "Test::Pod::Coverage 1.08 required for testing POD coverage",
    "Set RELEASE_TESTING to enable this test",
    "Set TEST_NETWORK or AUTHOR_TESTING to run network tests",
    "no network connection available",
    "DBD::SQLite not installed",
    "threads not available",
    "Windows only",
    "requires a C compiler",
    "Set EXTENDED_TESTING to run these tests",
    "No Test::Memory::Cycle",
    "fork() emulation not reliable on this platform",
];

/// Perl runtime errors; `@F` = file, `@L` = line, `@P` = package, `@M` = method.
#[rustfmt::skip]
const DIE_MESSAGES: &[&str] = &[
    "Can't call method \"@M\" on an undefined value at @F line @L.",
    "Can't locate object method \"@M\" via package \"@P\" at @F line @L.",
    "Can't use an undefined value as a HASH reference at @F line @L.",
    "Not a HASH reference at @F line @L.",
    "Not an ARRAY reference at @F line @L.",
    "Undefined subroutine &@P::@M called at @F line @L.",
    "Odd number of elements in hash assignment at @F line @L.",
    "Modification of a read-only value attempted at @F line @L.",
    "Attribute (@M) is required at constructor @P::new (defined at @F line @L) line @L.",
    "isa check for \"@M\" failed: undef is not a string! at (eval 213) line 38.",
    "Value \"abc\" did not pass type constraint \"Int\" (in $_[1]) at @F line @L.",
    "DBD::SQLite::db do failed: no such table: @M at @F line @L.",
    "Experimental keys on scalar is now forbidden at @F line @L.",
    "Unescaped left brace in regex is illegal here in regex; marked by <-- HERE in m/\\d{ <-- HERE ,3}/ at @F line @L.",
    "Bareword filehandle \"FH\" not allowed under 'no feature \"bareword_filehandles\"' at @F line @L.",
    "Old package separator \"'\" deprecated at @F line @L.",
    "Can't connect to localhost:8080 (Connection refused) at @F line @L.",
    "Deep recursion on subroutine \"@P::@M\" at @F line @L.",
    "Can't open '/nonexistent/@M.conf': No such file or directory at @F line @L.",
    "Smartmatch is deprecated at @F line @L.",
    "Attempt to reload @P.pm aborted.\nCompilation failed in require at @F line @L.",
    "Illegal division by zero at @F line @L.",
    "Wide character in print at @F line @L.",
    "malformed JSON string, neither tag, array, object, number, string or atom, at character offset 0 (before \"<html>\") at @F line @L.",
];

/// Warnings that show up in otherwise passing test output.
#[rustfmt::skip]
const WARNINGS: &[&str] = &[
    "Use of uninitialized value $_[0] in concatenation (.) or string at @F line @L.",
    "Use of uninitialized value in numeric eq (==) at @F line @L.",
    "Subroutine @M redefined at @F line @L.",
    "Deep recursion on subroutine \"@P::@M\" at @F line @L.",
    "Argument \"1.2.3\" isn't numeric in numeric comparison (<=>) at @F line @L.",
    "Possible precedence issue with control flow operator (return) at @F line @L.",
    "Useless use of a constant (1) in void context at @F line @L.",
    "Name \"@P::DEBUG\" used only once: possible typo at @F line @L.",
];

/// C libraries an XS dist may need: (header, library, Debian package).
#[rustfmt::skip]
const C_LIBS: &[(&str, &str, &str)] = &[
    ("gmp.h", "gmp", "libgmp-dev"),
    ("openssl/ssl.h", "ssl", "libssl-dev"),
    ("expat.h", "expat", "libexpat1-dev"),
    ("zlib.h", "z", "zlib1g-dev"),
    ("libxml/parser.h", "xml2", "libxml2-dev"),
    ("ffi.h", "ffi", "libffi-dev"),
    ("sqlite3.h", "sqlite3", "libsqlite3-dev"),
    ("mysql.h", "mysqlclient", "libmysqlclient-dev"),
    ("libpq-fe.h", "pq", "libpq-dev"),
    ("curl/curl.h", "curl", "libcurl4-openssl-dev"),
    ("yaml.h", "yaml", "libyaml-dev"),
    ("magic.h", "magic", "libmagic-dev"),
    ("png.h", "png", "libpng-dev"),
    ("jpeglib.h", "jpeg", "libjpeg-dev"),
    ("uuid/uuid.h", "uuid", "uuid-dev"),
    ("readline/readline.h", "readline", "libreadline-dev"),
    ("archive.h", "archive", "libarchive-dev"),
    ("pcre.h", "pcre", "libpcre3-dev"),
    ("db.h", "db", "libdb-dev"),
    ("krb5.h", "krb5", "libkrb5-dev"),
    ("gd.h", "gd", "libgd-dev"),
    ("zmq.h", "zmq", "libzmq3-dev"),
];

#[rustfmt::skip]
const DEBIAN_PATCHES: &[&str] = &[
    "DEBPKG:debian/cpan_definstalldirs - Provide a sensible INSTALLDIRS default for modules installed from CPAN.",
    "DEBPKG:debian/db_file_ver - https://bugs.debian.org/340047 Remove overly restrictive DB_File version check.",
    "DEBPKG:debian/doc_info - Replace generic man(1) instructions with Debian-specific information.",
    "DEBPKG:debian/enc2xs_inc - https://bugs.debian.org/290336 Tweak enc2xs to follow symlinks and ignore missing @INC directories.",
    "DEBPKG:debian/errno_ver - https://bugs.debian.org/343351 Remove Errno version check due to upgrade problems with long-running processes.",
    "DEBPKG:debian/libperl_embed_doc - https://bugs.debian.org/186778 Note that libperl-dev package is required for embedded linking",
    "DEBPKG:fixes/respect_umask - Respect umask during installation",
    "DEBPKG:debian/writable_site_dirs - Set umask approproately for site install directories",
    "DEBPKG:debian/extutils_set_libperl_path - EU:MM: set location of libperl.a under /usr/lib",
    "DEBPKG:debian/no_packlist_perllocal - Don't install .packlist or perllocal.pod for perl or vendor",
    "DEBPKG:debian/fakeroot - Postpone LD_LIBRARY_PATH evaluation to the binary targets.",
    "DEBPKG:debian/instmodsh_doc - Debian policy doesn't install .packlist files for core or vendor.",
    "DEBPKG:debian/ld_run_path - Remove standard libs from LD_RUN_PATH as per Debian policy.",
    "DEBPKG:debian/libnet_config_path - Set location of libnet.cfg to /etc/perl/Net as /usr may not be writable.",
    "DEBPKG:debian/perlivp - https://bugs.debian.org/510895 Make perlivp skip include directories in /usr/local",
    "DEBPKG:debian/squelch-locale-warnings - https://bugs.debian.org/508764 Squelch locale warnings in Debian package maintainer scripts",
    "DEBPKG:fixes/document_makemaker_ccflags - https://bugs.debian.org/628522 [rt.cpan.org #68613] Document that CCFLAGS should include $Config{ccflags}",
    "DEBPKG:debian/find_html2text - https://bugs.debian.org/640479 Configure CPAN::Distribution with correct name of html2text",
    "DEBPKG:debian/perl5db-x-terminal-emulator.patch - https://bugs.debian.org/668490 Invoke x-terminal-emulator rather than xterm in perl5db.pl",
    "DEBPKG:debian/cpan-missing-site-dirs - https://bugs.debian.org/688842 Fix CPAN::FirstTime defaults with nonexisting site dirs if a parent is writable",
    "DEBPKG:debian/makemaker-pasthru - https://bugs.debian.org/758471 Pass LD settings through to subdirectories",
    "DEBPKG:debian/makemaker-manext - https://bugs.debian.org/247370 Make EU::MakeMaker honour MANnEXT settings in generated manpage headers",
    "DEBPKG:debian/prune_libs - https://bugs.debian.org/128355 Prune the list of libraries wanted to what we actually need.",
    "DEBPKG:debian/mod_paths - Tweak @INC ordering for Debian",
    "DEBPKG:debian/deprecate-with-apt - https://bugs.debian.org/747628 Point users to Debian packages of deprecated core modules",
    "DEBPKG:debian/disable-stack-check - https://bugs.debian.org/902779 [GH #16607] Disable debugperl stack extension checks for binary compatibility with perl",
    "DEBPKG:debian/perlbug-editor - https://bugs.debian.org/922609 Use \"editor\" as the default perlbug editor, as per Debian policy",
    "DEBPKG:debian/eu-mm-perl-base - https://bugs.debian.org/962138 Suppress an ExtUtils::MakeMaker warning about our non-default @INC",
    "DEBPKG:fixes/io_socket_ip_ipv6 - Disable getaddrinfo(3) AI_ADDRCONFIG for localhost and IPv4 numeric addresses",
    "DEBPKG:debian/usrmerge-lib64 - https://bugs.debian.org/914128 Configure / libpth.U: Do not adjust glibpth when /usr/lib64 is present.",
    "DEBPKG:debian/configure-regen - https://bugs.debian.org/762638 Regenerate Configure et al. after probe unit changes",
    "DEBPKG:fixes/CVE-2023-47038 - [7047915] https://bugs.debian.org/1056746 Fix read/write past buffer end: perl-security#140",
    "DEBPKG:fixes/CVE-2023-31484 - https://bugs.debian.org/1035109 Add verify_SSL=>1 to HTTP::Tiny to verify https server identity",
];

#[rustfmt::skip]
const MONTHS: &[&str] = &["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Perl versions testers run, with weights. Devel, RC and patched strings included.
#[rustfmt::skip]
const PERLS: &[(&str, u64)] = &[
    ("5.8.9", 2), ("5.10.1", 3), ("5.12.5", 2), ("5.14.4", 3), ("5.16.3", 3), ("5.18.4", 3),
    ("5.20.3", 3), ("5.22.4", 3), ("5.24.4", 4), ("5.26.3", 5), ("5.28.3", 5), ("5.30.3", 6),
    ("5.32.1", 8), ("5.34.3", 7), ("5.36.0", 4), ("5.36.3", 10), ("5.38.2", 12), ("5.38.4", 5),
    ("5.40.0", 8), ("5.40.2", 8), ("5.42.0", 12), ("5.41.1", 1), ("5.41.2", 1), ("5.41.3", 1),
    ("5.41.4", 1), ("5.41.5", 1), ("5.41.6", 1), ("5.41.7", 1), ("5.41.8", 1), ("5.41.9", 1),
    ("5.41.10", 1), ("5.41.11", 1), ("5.41.12", 1), ("5.41.13", 1), ("5.43.1", 1), ("5.43.2", 1),
    ("5.40.0 RC1", 1), ("5.42.0 RC1", 1), ("5.42.0 RC2", 1), ("5.41.8 patch blead", 1),
    ("5.39.10 patch v5.39.9-35-g3f1e6d2b4c", 1),
];

// ---------------------------------------------------------------------------------------------
// The world: authors, distributions, testers and their machines
// ---------------------------------------------------------------------------------------------

struct Author {
    pause_id: String,
    name: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BuildTool {
    MakeMaker,
    ModuleBuild,
    ModuleBuildTiny,
}

struct Dist {
    name: String,
    /// `Data::Dumper::Concise`
    module: String,
    /// `Data/Dumper/Concise`
    path: String,
    /// `Concise`
    leaf: String,
    author: usize,
    versions: Vec<String>,
    ext: &'static str,
    xs: bool,
    tool: BuildTool,
    n_tests: usize,
    shape: u64,
    win32_only: bool,
}

struct Profile {
    style: ClientStyle,
    automated: bool,
    comment: Option<&'static str>,
    numeric_build_suffix: bool,
    machines: Vec<Machine>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Os {
    Linux,
    FreeBsd,
    Darwin,
    Win32,
    OpenBsd,
    NetBsd,
    Solaris,
    Cygwin,
    DragonFly,
    MidnightBsd,
    Haiku,
}

#[rustfmt::skip]
const OS_WEIGHTS: &[(Os, u64)] = &[
    (Os::Linux, 112),
    (Os::FreeBsd, 26),
    (Os::Darwin, 18),
    (Os::Win32, 18),
    (Os::OpenBsd, 10),
    (Os::NetBsd, 6),
    (Os::Solaris, 4),
    (Os::Cygwin, 4),
    (Os::DragonFly, 2),
    (Os::MidnightBsd, 1),
    (Os::Haiku, 1),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum MakeFlavor {
    /// GNU make 4.x: `make: *** [Makefile:819: test_dynamic] Error 1`
    Gnu,
    /// GNU make 3.x: `make: *** [test_dynamic] Error 1`
    GnuOld,
    /// BSD make: `*** Error code 1` / `Stop.`
    Bsd,
    /// Strawberry's gmake
    Gmake,
}

/// One perl on one computer of one tester, with everything pre-rendered that does not change
/// from report to report.
struct Machine {
    osname: &'static str,
    osversion: String,
    archname: String,
    /// Perl version as reported (`5.36.0`, `5.42.0 RC1`).
    perl: String,
    /// `$]`, e.g. `5.036000`.
    perl_num: String,
    minor: u32,
    sub: u32,
    perl_path: String,
    windows: bool,
    clang: bool,
    make_cmd: &'static str,
    make: MakeFlavor,
    build_root: String,
    cpanm_home: String,
    path_sep: char,
    dir_sep: char,
    /// Static environment variables (CPAN::Reporter run), unsorted.
    env: Vec<(&'static str, String)>,
    /// Static environment variables (cpanm-reporter run), unsorted.
    env_cpanm: Vec<(&'static str, String)>,
    /// Local::lib directory prepended to PERL5LIB, if any.
    local_lib: Option<String>,
    special_cpr: String,
    special_cpanm: String,
    toolchain: String,
    era: usize,
    new_wstat: bool,
    /// `perl -V` up to and including the "Compiled at" line.
    perl_v: String,
    inc: Vec<String>,
    /// The harness command line `make test` prints.
    mm_test_cmd: String,
    xs_cc: String,
    xs_core: String,
    xs_ld: String,
    xsubpp: String,
    dlext: &'static str,
    seed: u64,
}

struct ClientVersions {
    cpan_reporter: &'static str,
    cpanm_reporter: &'static str,
    cpanm: &'static str,
}

/// The client versions a tester runs (a pure function of the tester index).
fn client_versions(tester_index: usize) -> ClientVersions {
    const CPR: &[&str] = &[
        "1.2020", "1.2020", "1.2019", "1.2018", "1.2018", "1.2017", "1.2014", "1.2011",
    ];
    const CMR: &[&str] = &["0.22", "0.22", "0.21", "0.20", "0.19", "0.17"];
    const CPANM: &[&str] = &["1.7047", "1.7046", "1.7046", "1.7044", "1.7043", "1.7042"];
    let h = mix64(tester_index as u64 ^ 0xC11E_2700);
    ClientVersions {
        cpan_reporter: CPR[(h % CPR.len() as u64) as usize],
        cpanm_reporter: CMR[((h >> 16) % CMR.len() as u64) as usize],
        cpanm: CPANM[((h >> 32) % CPANM.len() as u64) as usize],
    }
}

struct World {
    authors: Vec<Author>,
    dists: Vec<Dist>,
    dist_zipf: Weighted,
    testers: Vec<Tester>,
    profiles: Vec<Profile>,
    tester_zipf: Weighted,
    vocab: Weighted,
}

impl World {
    fn get() -> &'static World {
        static WORLD: OnceLock<World> = OnceLock::new();
        WORLD.get_or_init(World::build)
    }

    fn build() -> World {
        let mut rng = Rng::new(WORLD_SEED);
        let vocab = Weighted::zipf(1024, 1.6, 4);
        let authors = build_authors(&mut rng, 900);
        let dists = build_dists(&mut rng, &authors, 3200);
        let (testers, profiles) = build_testers(&mut rng, 320);
        World {
            dist_zipf: Weighted::zipf(dists.len(), 8.0, 4),
            tester_zipf: Weighted::zipf(testers.len(), 1.0, 5),
            vocab,
            authors,
            dists,
            testers,
            profiles,
        }
    }

    /// Zipf-distributed index into a vocabulary list of `len` entries.
    fn zipf_index(&self, rng: &mut Rng, len: usize) -> usize {
        if len > self.vocab.cum.len() {
            return rng.below(len);
        }
        loop {
            let i = self.vocab.sample(rng);
            if i < len {
                return i;
            }
        }
    }

    fn word<'w>(&self, rng: &mut Rng, list: &'w [&'w str]) -> &'w str {
        list[self.zipf_index(rng, list.len())]
    }
}

/// ASCII-folds a name for use in ids and e-mail addresses.
fn ascii_fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let m = match c {
            'á' | 'à' | 'â' | 'ä' | 'å' | 'ã' => "a",
            'Á' | 'À' | 'Â' | 'Ä' | 'Å' => "A",
            'é' | 'è' | 'ê' | 'ë' => "e",
            'É' | 'È' => "E",
            'í' | 'ì' | 'î' | 'ï' => "i",
            'ó' | 'ò' | 'ô' | 'ö' | 'ø' | 'õ' => "o",
            'Ó' | 'Ö' | 'Ø' => "O",
            'ú' | 'ù' | 'û' | 'ü' => "u",
            'Ú' | 'Ü' => "U",
            'ñ' => "n",
            'ç' | 'ć' | 'č' => "c",
            'ś' | 'š' => "s",
            'ł' => "l",
            'Ł' => "L",
            'ř' => "r",
            'ž' => "z",
            'ý' => "y",
            'æ' => "ae",
            'Æ' => "Ae",
            'ß' => "ss",
            'ő' => "o",
            _ if c.is_ascii_alphanumeric() => {
                out.push(c);
                continue;
            }
            _ => continue,
        };
        out.push_str(m);
    }
    out
}

fn build_authors(rng: &mut Rng, n: usize) -> Vec<Author> {
    let mut seen = HashSet::new();
    let mut authors = Vec::with_capacity(n);
    while authors.len() < n {
        let first = *rng.pick(FIRST_NAMES);
        let last = *rng.pick(LAST_NAMES);
        let first_ascii = ascii_fold(first);
        let last_ascii = ascii_fold(last);
        let name = if rng.chance(120) {
            let initial = (b'A' + rng.below(26) as u8) as char;
            format!("{first} {initial}. {last}")
        } else {
            format!("{first} {last}")
        };
        let mut id = match rng.below(6) {
            0..=2 => format!("{}{}", &first_ascii[..1], last_ascii),
            3 => format!("{}{}", first_ascii, &last_ascii[..1]),
            4 => last_ascii.clone(),
            _ => {
                let mut s = String::new();
                for _ in 0..rng.range(2, 4) {
                    s.push_str(rng.pick_str(PAUSE_SYLLABLES));
                }
                s
            }
        }
        .to_ascii_uppercase();
        id.truncate(9);
        if id.len() < 3 || !seen.insert(id.clone()) {
            continue;
        }
        authors.push(Author { pause_id: id, name });
    }
    authors
}

fn build_dists(rng: &mut Rng, authors: &[Author], n: usize) -> Vec<Dist> {
    let author_zipf = Weighted::zipf(authors.len(), 3.0, 4);
    let top_zipf = Weighted::zipf(NS_TOP.len(), 2.0, 4);
    let mut seen = HashSet::new();
    let mut dists = Vec::with_capacity(n);
    while dists.len() < n {
        let mut parts: Vec<&str> = vec![NS_TOP[top_zipf.sample(rng)]];
        let r = rng.below(100);
        let mids = if r < 58 {
            1
        } else if r < 84 {
            2
        } else if r < 90 {
            3
        } else {
            0
        };
        for _ in 0..mids {
            let w = *rng.pick(NS_MID);
            if !parts.contains(&w) {
                parts.push(w);
            }
        }
        if rng.chance(200) || parts.len() == 1 && rng.chance(500) {
            let w = *rng.pick(NS_SUFFIX);
            if !parts.contains(&w) {
                parts.push(w);
            }
        }
        let name = parts.join("-");
        if !seen.insert(name.clone()) {
            continue;
        }
        let module = name.replace('-', "::");
        let path = name.replace('-', "/");
        let leaf = name.rsplit('-').next().unwrap_or(&name).to_string();
        let xs = name.contains("XS") || rng.chance(110);
        let tool = match rng.below(100) {
            0..=71 => BuildTool::MakeMaker,
            72..=85 => BuildTool::ModuleBuild,
            _ => BuildTool::ModuleBuildTiny,
        };
        let ext = match rng.below(100) {
            0..=85 => ".tar.gz",
            86..=91 => ".tgz",
            92..=95 => ".zip",
            _ => ".tar.bz2",
        };
        let n_tests = 2
            + rng.below(9)
            + if rng.chance(500) { rng.below(18) } else { 0 }
            + if rng.chance(120) { rng.below(70) } else { 0 }
            // Popular distributions tend to be big, well-tested ones.
            + if dists.len() < 300 { rng.range(4, 36) } else { 0 }
            + if dists.len() < 40 { rng.range(8, 60) } else { 0 };
        let versions = build_versions(rng, dists.len());
        dists.push(Dist {
            win32_only: name.starts_with("Win32"),
            name,
            module,
            path,
            leaf,
            author: author_zipf.sample(rng),
            versions,
            ext,
            xs,
            tool,
            n_tests,
            shape: rng.next_u64(),
        });
    }
    dists
}

/// A plausible release history: 1 to 8 versions in one numbering scheme, with dev releases.
fn build_versions(rng: &mut Rng, popularity_rank: usize) -> Vec<String> {
    let max = if popularity_rank < 200 { 8 } else { 5 };
    let count = 1 + rng.skewed(max) + usize::from(popularity_rank < 200);
    let scheme = match rng.below(100) {
        0..=44 => 0,  // 0.07
        45..=62 => 1, // 1.004
        63..=70 => 2, // 0.001003
        71..=89 => 3, // 1.2.3
        _ => 4,       // v1.2.3
    };
    let trial_style = rng.chance(300);
    let mut major = if rng.chance(550) { 0 } else { rng.range(1, 3) };
    let mut minor = rng.range(1, 40);
    let mut patch = rng.below(5);
    let fmt = |major: usize, minor: usize, patch: usize| -> String {
        match scheme {
            0 => format!("{major}.{minor:02}"),
            1 => format!("{major}.{minor:03}"),
            2 => format!("{major}.{minor:03}{patch:03}"),
            3 => format!("{major}.{minor}.{patch}"),
            _ => format!("v{major}.{minor}.{patch}"),
        }
    };
    let mut out = Vec::with_capacity(count + 2);
    let mut current = fmt(major, minor, patch);
    out.push(current.clone());
    while out.len() < count {
        // next stable
        if scheme >= 2 && rng.chance(700) {
            patch += 1;
        } else {
            minor += rng.range(1, 2);
            patch = 0;
        }
        if minor >= 99 || rng.chance(30) {
            major += 1;
            minor = 0;
        }
        let next = fmt(major, minor, patch);
        if rng.chance(140) {
            if trial_style || scheme >= 3 {
                out.push(format!("{next}-TRIAL"));
            } else {
                out.push(format!("{current}_0{}", rng.range(1, 3)));
            }
        }
        out.push(next.clone());
        current = next;
    }
    if rng.chance(60) {
        // A dev release after the latest stable, currently being smoked.
        if trial_style || scheme >= 3 {
            out.push(format!("{}-TRIAL", fmt(major, minor + 1, 0)));
        } else {
            out.push(format!("{current}_01"));
        }
    }
    out
}

fn build_testers(rng: &mut Rng, n: usize) -> (Vec<Tester>, Vec<Profile>) {
    let os_table = Weighted::new(OS_WEIGHTS.iter().map(|&(_, w)| w));
    let perl_table = Weighted::new(PERLS.iter().map(|&(_, w)| w));
    let mut testers = Vec::with_capacity(n);
    let mut profiles = Vec::with_capacity(n);
    let mut seen_emails = HashSet::new();
    for rank in 0..n {
        let first = *rng.pick(FIRST_NAMES);
        let last = *rng.pick(LAST_NAMES);
        let name = if rng.chance(25) {
            format!("CPAN Smoker {}", rank + 1)
        } else if rng.chance(80) {
            let initial = (b'A' + rng.below(26) as u8) as char;
            format!("{first} {initial}. {last}")
        } else {
            format!("{first} {last}")
        };
        let fa = ascii_fold(first).to_ascii_lowercase();
        let la = ascii_fold(last).to_ascii_lowercase();
        let mut local = match rng.below(4) {
            0 => format!("{fa}.{la}"),
            1 => format!("{}{la}", &fa[..1]),
            2 => format!("{fa}{}", &la[..1]),
            _ => format!("{la}{}", rng.range(1, 99)),
        };
        if !seen_emails.insert(local.clone()) {
            local = format!("{local}{rank}");
            seen_emails.insert(local.clone());
        }
        let email = format!("{local}@{}", rng.pick(EMAIL_DOMAINS));
        let user_guid = lower_uuid(random_uuid(rng));
        const SECRET_CHARS: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-";
        let secret: String = (0..rng.range(16, 32))
            .map(|_| *rng.pick(SECRET_CHARS) as char)
            .collect();

        let style = if rng.chance(if rank < 10 { 850 } else { 720 }) {
            ClientStyle::CpanReporter
        } else {
            ClientStyle::CpanmReporter
        };
        let automated = rng.chance(if rank < 40 { 950 } else { 550 });
        let comment = if rng.chance(70) {
            Some(*rng.pick(TESTER_COMMENTS))
        } else {
            None
        };
        let machine_count = if rank < 3 {
            rng.range(10, 16)
        } else if rank < 8 {
            rng.range(5, 9)
        } else if rank < 30 {
            rng.range(2, 5)
        } else {
            rng.range(1, 2)
        };
        let user = match rng.below(6) {
            0 => "cpan".to_string(),
            1 => "smoker".to_string(),
            2 => "cpansand".to_string(),
            3 => "tester".to_string(),
            _ => la.clone(),
        };
        let local_lib = style == ClientStyle::CpanmReporter && rng.chance(500) || rng.chance(100);
        let mut machines = Vec::with_capacity(machine_count);
        for k in 0..machine_count {
            let os = if k == 0 && rank < 8 {
                Os::Linux
            } else if rank < 8 {
                // The big smokers run mainstream systems, mostly linux.
                const CYCLE: [Os; 12] = [
                    Os::Linux,
                    Os::Linux,
                    Os::FreeBsd,
                    Os::Linux,
                    Os::Darwin,
                    Os::Linux,
                    Os::OpenBsd,
                    Os::Linux,
                    Os::Win32,
                    Os::Linux,
                    Os::FreeBsd,
                    Os::Linux,
                ];
                CYCLE[(k + rank) % CYCLE.len()]
            } else {
                OS_WEIGHTS[os_table.sample(rng)].0
            };
            let perl = PERLS[perl_table.sample(rng)].0;
            machines.push(build_machine(rng, os, perl, &user, automated, local_lib));
        }
        testers.push(Tester {
            user_guid,
            name,
            email,
            secret,
        });
        profiles.push(Profile {
            style,
            automated,
            comment,
            numeric_build_suffix: rng.chance(400),
            machines,
        });
    }
    (testers, profiles)
}

// ---------------------------------------------------------------------------------------------
// Machines and `perl -V`
// ---------------------------------------------------------------------------------------------

/// `$Config` values rendered by `perl -V`.
struct PerlConf {
    osname: &'static str,
    osvers: String,
    archname: String,
    uname: String,
    config_args: String,
    threads: bool,
    longdouble: bool,
    quadmath: bool,
    bits32: bool,
    llp64: bool,
    debugging: bool,
    cc: String,
    ccflags: String,
    optimize: String,
    cppflags: String,
    ccversion: String,
    gccversion: String,
    ld: String,
    ldflags: String,
    libpth: String,
    libs: String,
    perllibs: String,
    libc: String,
    so: &'static str,
    useshrplib: bool,
    libperl: String,
    gnulibc: String,
    dlsrc: &'static str,
    dlext: &'static str,
    ccdlflags: String,
    cccdlflags: String,
    lddlflags: String,
    patches: Vec<String>,
    commit: Option<String>,
    compiled_at: String,
}

impl PerlConf {
    fn unix(osname: &'static str, osvers: String, archname: String) -> PerlConf {
        PerlConf {
            osname,
            osvers,
            archname,
            uname: String::new(),
            config_args: String::new(),
            threads: false,
            longdouble: false,
            quadmath: false,
            bits32: false,
            llp64: false,
            debugging: false,
            cc: "cc".into(),
            ccflags: "-fwrapv -fno-strict-aliasing -pipe -fstack-protector-strong -I/usr/local/include -D_LARGEFILE_SOURCE -D_FILE_OFFSET_BITS=64".into(),
            optimize: "-O2".into(),
            cppflags: "-fwrapv -fno-strict-aliasing -pipe -fstack-protector-strong -I/usr/local/include".into(),
            ccversion: String::new(),
            gccversion: String::new(),
            ld: "cc".into(),
            ldflags: " -fstack-protector-strong -L/usr/local/lib".into(),
            libpth: "/usr/local/lib /usr/lib /lib".into(),
            libs: "-lpthread -ldl -lm -lcrypt -lutil -lc".into(),
            perllibs: "-lpthread -ldl -lm -lcrypt -lutil -lc".into(),
            libc: String::new(),
            so: "so",
            useshrplib: false,
            libperl: "libperl.a".into(),
            gnulibc: String::new(),
            dlsrc: "dl_dlopen.xs",
            dlext: "so",
            ccdlflags: "-Wl,-E".into(),
            cccdlflags: "-fPIC".into(),
            lddlflags: "-shared -O2 -L/usr/local/lib -fstack-protector-strong".into(),
            patches: Vec::new(),
            commit: None,
            compiled_at: String::new(),
        }
    }
}

/// Parses `5.36.0`, `5.42.0 RC1`, `5.41.8 patch blead` into (minor, subversion).
fn perl_parts(perl: &str) -> (u32, u32) {
    let core = perl.split(' ').next().unwrap_or(perl);
    let mut it = core
        .split('.')
        .skip(1)
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(36), it.next().unwrap_or(0))
}

/// `5.38` for `5.38.2`.
fn perl_major(minor: u32) -> String {
    format!("5.{minor}")
}

fn compiled_at(rng: &mut Rng, minor: u32) -> String {
    let released = 2008 + (minor.saturating_sub(8) / 2) as usize;
    let year = released.max(2018 + rng.below(8));
    let day = rng.range(1, 28);
    format!(
        "{} {}{} {} {:02}:{:02}:{:02}",
        MONTHS[rng.below(12)],
        if day < 10 { " " } else { "" },
        day,
        year.min(2026),
        rng.below(24),
        rng.below(60),
        rng.below(60)
    )
}

fn hex_string(rng: &mut Rng, len: usize) -> String {
    let mut s = String::with_capacity(len);
    while s.len() < len {
        push_hex(&mut s, rng.next_u64(), 16);
    }
    s.truncate(len);
    s
}

/// Standard `-Dprefix` layout: (inc, archlib, privlib).
fn prefix_layout(prefix: &str, v: &str, arch: &str) -> (Vec<String>, String, String) {
    let archlib = format!("{prefix}/lib/{v}/{arch}");
    let privlib = format!("{prefix}/lib/{v}");
    (
        vec![
            format!("{prefix}/lib/site_perl/{v}/{arch}"),
            format!("{prefix}/lib/site_perl/{v}"),
            archlib.clone(),
            privlib.clone(),
        ],
        archlib,
        privlib,
    )
}

struct Distro {
    kernel: &'static str,
    lo: usize,
    hi: usize,
    gcc: &'static str,
    glibc: &'static str,
    sys_perl: &'static str,
    /// 0 = Debian-like, 1 = Red Hat-like, 2 = Arch, 3 = none/other
    kind: u8,
    weight: u64,
    label: &'static str,
    cpu: &'static str,
}

#[rustfmt::skip]
const DISTROS: &[Distro] = &[
    Distro { kernel: "6.1.0-#-amd64", lo: 10, hi: 32, gcc: "12.2.0", glibc: "2.36", sys_perl: "5.36.0", kind: 0, weight: 24, label: "debian 6.1.76-1 (2024-02-01)", cpu: "x86_64" },
    Distro { kernel: "6.8.0-#-generic", lo: 31, hi: 60, gcc: "13.3.0", glibc: "2.39", sys_perl: "5.38.2", kind: 0, weight: 14, label: "ubuntu", cpu: "x86_64" },
    Distro { kernel: "5.15.0-#-generic", lo: 60, hi: 131, gcc: "11.4.0", glibc: "2.35", sys_perl: "5.34.0", kind: 0, weight: 12, label: "ubuntu", cpu: "x86_64" },
    Distro { kernel: "5.10.0-#-amd64", lo: 19, hi: 34, gcc: "10.2.1 20210110", glibc: "2.31", sys_perl: "5.32.1", kind: 0, weight: 8, label: "debian 5.10.209-2 (2024-01-31)", cpu: "x86_64" },
    Distro { kernel: "6.12.#+deb13-amd64", lo: 20, hi: 48, gcc: "14.2.0", glibc: "2.41", sys_perl: "5.40.1", kind: 0, weight: 6, label: "debian 6.12.38-1 (2025-07-16)", cpu: "x86_64" },
    Distro { kernel: "5.4.0-#-generic", lo: 100, hi: 205, gcc: "9.4.0", glibc: "2.31", sys_perl: "5.30.0", kind: 0, weight: 4, label: "ubuntu", cpu: "x86_64" },
    Distro { kernel: "4.19.0-#-amd64", lo: 20, hi: 27, gcc: "8.3.0", glibc: "2.28", sys_perl: "5.28.1", kind: 0, weight: 3, label: "debian 4.19.316-1 (2024-06-25)", cpu: "x86_64" },
    Distro { kernel: "6.6.#+rpt-rpi-v8", lo: 20, hi: 74, gcc: "12.2.0", glibc: "2.36", sys_perl: "5.36.0", kind: 0, weight: 4, label: "debian 1:6.6.51-1+rpt3 (2024-10-08)", cpu: "aarch64" },
    Distro { kernel: "3.10.0-1160.#.1.el7.x86_64", lo: 6, hi: 119, gcc: "4.8.5 20150623 (Red Hat 4.8.5-44)", glibc: "2.17", sys_perl: "5.16.3", kind: 1, weight: 4, label: "centos", cpu: "x86_64" },
    Distro { kernel: "4.18.0-#.el8_10.x86_64", lo: 477, hi: 553, gcc: "8.5.0 20210514 (Red Hat 8.5.0-22)", glibc: "2.28", sys_perl: "5.26.3", kind: 1, weight: 5, label: "almalinux", cpu: "x86_64" },
    Distro { kernel: "5.14.0-#.el9_4.x86_64", lo: 362, hi: 503, gcc: "11.4.1 20231218 (Red Hat 11.4.1-3)", glibc: "2.34", sys_perl: "5.32.1", kind: 1, weight: 5, label: "rocky", cpu: "x86_64" },
    Distro { kernel: "6.#.5-200.fc40.x86_64", lo: 8, hi: 11, gcc: "14.2.1 20240912 (Red Hat 14.2.1-3)", glibc: "2.39", sys_perl: "5.38.2", kind: 1, weight: 5, label: "fedora", cpu: "x86_64" },
    Distro { kernel: "6.#.7-arch1-1", lo: 6, hi: 12, gcc: "14.2.1 20240910", glibc: "2.40", sys_perl: "5.40.0", kind: 2, weight: 6, label: "arch", cpu: "x86_64" },
    Distro { kernel: "6.6.#-0-lts", lo: 20, hi: 60, gcc: "13.2.1 20240309", glibc: "", sys_perl: "", kind: 3, weight: 3, label: "alpine", cpu: "x86_64" },
    Distro { kernel: "6.4.0-150600.23.#-default", lo: 7, hi: 30, gcc: "7.5.0", glibc: "2.38", sys_perl: "", kind: 3, weight: 3, label: "opensuse", cpu: "x86_64" },
    Distro { kernel: "6.6.#-gentoo", lo: 20, hi: 60, gcc: "13.3.1 20240614", glibc: "2.39", sys_perl: "", kind: 3, weight: 3, label: "gentoo", cpu: "x86_64" },
];

#[rustfmt::skip]
const HOSTS: &[&str] = &[
    "smoker", "cpan-smoke", "t470", "buildbox", "pi4", "ax41", "vm-test", "ci-runner", "tank",
    "ryzen", "nuc", "thinkpad", "jail", "sandbox", "testbox", "srv", "quad", "oldbox",
];

fn host(rng: &mut Rng) -> String {
    let h = *rng.pick(HOSTS);
    if rng.chance(500) {
        format!("{h}{}", rng.range(1, 12))
    } else {
        h.to_string()
    }
}

fn fill_number(template: &str, n: usize) -> String {
    template.replace('#', &num(n))
}

/// Picks a perl that fits the install kind: `wanted` for built perls, else the system one.
fn build_machine(
    rng: &mut Rng,
    os: Os,
    wanted_perl: &'static str,
    user: &str,
    automated: bool,
    local_lib: bool,
) -> Machine {
    let home_unix = match os {
        Os::Darwin => format!("/Users/{user}"),
        Os::Solaris => format!("/export/home/{user}"),
        Os::Haiku => "/boot/home".to_string(),
        Os::Win32 => format!("C:\\Users\\{user}"),
        _ => format!("/home/{user}"),
    };
    let home = home_unix.as_str();
    let mut perl: String = wanted_perl.to_string();
    let mut make_cmd = "make";
    let mut make = MakeFlavor::Gnu;
    let mut perlbrew_root: Option<String> = None;

    // Built (perlbrew / plenv / custom) perls share one shape; system perls differ per OS.
    let built_prefix = |rng: &mut Rng, perl: &str, threaded: bool| -> (String, Option<String>) {
        let vtag = perl.replace(' ', "-");
        match rng.below(100) {
            0..=59 => {
                let thr = if threaded && rng.chance(500) {
                    "-thr"
                } else {
                    ""
                };
                let root = format!("{home}/perl5/perlbrew");
                (format!("{root}/perls/perl-{vtag}{thr}"), Some(root))
            }
            60..=74 => (format!("{home}/.plenv/versions/{vtag}"), None),
            75..=86 => (format!("/opt/perl/{vtag}"), None),
            _ => (format!("{home}/perls/{vtag}"), None),
        }
    };

    let mut conf;
    let inc: Vec<String>;
    let archlib: String;
    let privlib: String;
    let perl_path: String;
    let mut windows = false;
    let mut clang = false;

    match os {
        Os::Linux => {
            let weights = Weighted::new(DISTROS.iter().map(|d| d.weight));
            let d = &DISTROS[weights.sample(rng)];
            let kernel = fill_number(d.kernel, rng.range(d.lo, d.hi));
            let system = !d.sys_perl.is_empty() && rng.chance(230);
            let cpu = d.cpu;
            let bits32 = !system && cpu == "x86_64" && rng.chance(15);
            if system {
                perl = d.sys_perl.to_string();
                let (minor, _) = perl_parts(&perl);
                let v2 = perl_major(minor);
                match d.kind {
                    0 => {
                        let triplet = format!("{cpu}-linux-gnu");
                        let osvers = if d.label.starts_with("debian") {
                            "4.19.0".to_string()
                        } else {
                            kernel.clone()
                        };
                        conf = PerlConf::unix(
                            "linux",
                            osvers.clone(),
                            format!("{triplet}-thread-multi"),
                        );
                        conf.uname = format!(
                            "linux localhost {osvers} #1 smp debian {osvers} {cpu} gnulinux "
                        );
                        conf.config_args = format!(
                            "-Dmksymlinks -Dusethreads -Duselargefiles -Dcc={triplet}-gcc -Dcpp={triplet}-cpp -Dld={triplet}-gcc -Dccflags=-DDEBIAN -Wdate-time -D_FORTIFY_SOURCE=2 -g -O2 -ffile-prefix-map=/dummy/build/dir=. -fstack-protector-strong -Wformat -Werror=format-security -Dldflags= -Wl,-z,relro -Dlddlflags=-shared -Wl,-z,relro -Dcccdlflags=-fPIC -Darchname={triplet} -Dprefix=/usr -Dprivlib=/usr/share/perl/{v2} -Darchlib=/usr/lib/{triplet}/perl/{v2} -Dvendorprefix=/usr -Dvendorlib=/usr/share/perl5 -Dvendorarch=/usr/lib/{triplet}/perl5/{v2} -Dsiteprefix=/usr/local -Dsitelib=/usr/local/share/perl/{perl} -Dsitearch=/usr/local/lib/{triplet}/perl/{perl} -Dman1dir=/usr/share/man/man1 -Dman3dir=/usr/share/man/man3 -Dsiteman1dir=/usr/local/man/man1 -Dsiteman3dir=/usr/local/man/man3 -Duse64bitint -Dman1ext=1 -Dman3ext=3perl -Dpager=/usr/bin/sensible-pager -Uafs -Ud_csh -Ud_ualarm -Uusesfio -Uusenm -Ui_libutil -Ui_xlocale -Uversiononly -DDEBUGGING=-g -Doptimize=-O2 -dEs -Duseshrplib -Dlibperl=libperl.so.{perl}"
                        );
                        conf.cc = format!("{triplet}-gcc");
                        conf.ld = conf.cc.clone();
                        conf.ccflags = "-D_REENTRANT -D_GNU_SOURCE -DDEBIAN -fwrapv -fno-strict-aliasing -pipe -I/usr/local/include -D_LARGEFILE_SOURCE -D_FILE_OFFSET_BITS=64".into();
                        conf.cppflags = "-D_REENTRANT -D_GNU_SOURCE -DDEBIAN -fwrapv -fno-strict-aliasing -pipe -I/usr/local/include".into();
                        conf.optimize = "-O2 -g".into();
                        conf.libpth = format!(
                            "/usr/local/lib /usr/lib/{triplet} /usr/lib /lib/{triplet} /lib"
                        );
                        conf.libs =
                            "-lgdbm -lgdbm_compat -ldb -ldl -lm -lpthread -lc -lcrypt".into();
                        conf.perllibs = "-ldl -lm -lpthread -lc -lcrypt".into();
                        conf.libc = format!("/lib/{triplet}/libc.so.6");
                        conf.useshrplib = true;
                        conf.libperl = format!("libperl.so.{v2}");
                        conf.lddlflags = "-shared -L/usr/local/lib -fstack-protector-strong".into();
                        conf.ldflags = " -fstack-protector-strong -L/usr/local/lib".into();
                        let n = rng.range(14, DEBIAN_PATCHES.len());
                        conf.patches = DEBIAN_PATCHES[..n].iter().map(|s| s.to_string()).collect();
                        inc = vec![
                            "/etc/perl".into(),
                            format!("/usr/local/lib/{triplet}/perl/{perl}"),
                            format!("/usr/local/share/perl/{perl}"),
                            format!("/usr/lib/{triplet}/perl5/{v2}"),
                            "/usr/share/perl5".into(),
                            format!("/usr/lib/{triplet}/perl-base"),
                            format!("/usr/lib/{triplet}/perl/{v2}"),
                            format!("/usr/share/perl/{v2}"),
                            "/usr/local/lib/site_perl".into(),
                        ];
                        archlib = format!("/usr/lib/{triplet}/perl/{v2}");
                        privlib = format!("/usr/share/perl/{v2}");
                        make_cmd = "/usr/bin/make";
                    }
                    1 => {
                        conf = PerlConf::unix(
                            "linux",
                            kernel.clone(),
                            "x86_64-linux-thread-multi".into(),
                        );
                        conf.uname = format!(
                            "linux {} {kernel} #1 smp {} x86_64 x86_64 x86_64 gnulinux ",
                            d.label, d.label
                        );
                        conf.config_args = format!(
                            "-des -Doptimize=none -Dccflags=-O2 -fexceptions -g -grecord-gcc-switches -pipe -Wall -Werror=format-security -Wp,-D_FORTIFY_SOURCE=2 -Wp,-D_GLIBCXX_ASSERTIONS -fstack-protector-strong -m64 -mtune=generic -fasynchronous-unwind-tables -fstack-clash-protection -fcf-protection -Dldflags=-Wl,-z,relro -Wl,--as-needed -Wl,-z,now -Dccdlflags=-Wl,--enable-new-dtags -Wl,-z,relro -Wl,--as-needed -Wl,-z,now -Dlddlflags=-shared -Wl,-z,relro -Wl,--as-needed -Wl,-z,now -Dshrpdir=/usr/lib64 -DDEBUGGING=-g -Dversion={perl} -Dmyhostname=localhost -Dperladmin=root@localhost -Dcc=gcc -Dcf_by=Red Hat, Inc. -Dprefix=/usr -Dvendorprefix=/usr -Dsiteprefix=/usr/local -Dsitelib=/usr/local/share/perl5/{v2} -Dsitearch=/usr/local/lib64/perl5/{v2} -Dprivlib=/usr/share/perl5 -Dvendorlib=/usr/share/perl5/vendor_perl -Darchlib=/usr/lib64/perl5 -Dvendorarch=/usr/lib64/perl5/vendor_perl -Darchname=x86_64-linux-thread-multi -Dlibpth=/usr/local/lib64 /lib64 /usr/lib64 -Duseshrplib -Dusethreads -Duseithreads -Dusedtrace=/usr/bin/dtrace -Duselargefiles -Dd_semctl_semun -Di_db -Ui_ndbm -Di_gdbm -Di_shadow -Di_syslog -Dman3ext=3pm -Duseperlio -Dinstallusrbinperl=n -Ubincompat5005 -Uversiononly -Dpager=/usr/bin/less -isr -Dd_gethostent_r_proto -Ud_endhostent_r_proto -Ud_sethostent_r_proto -Ud_endprotoent_r_proto -Ud_setprotoent_r_proto -Ud_endservent_r_proto -Ud_setservent_r_proto -Dscriptdir=/usr/bin -Dusesitecustomize"
                        );
                        conf.cc = "gcc".into();
                        conf.ld = "gcc".into();
                        conf.ccflags = "-D_REENTRANT -D_GNU_SOURCE -O2 -fexceptions -g -grecord-gcc-switches -pipe -Wall -Werror=format-security -Wp,-D_FORTIFY_SOURCE=2 -fstack-protector-strong -m64 -mtune=generic -fasynchronous-unwind-tables -fstack-clash-protection -fcf-protection -fwrapv -fno-strict-aliasing -I/usr/local/include -D_LARGEFILE_SOURCE -D_FILE_OFFSET_BITS=64".into();
                        conf.cppflags = "-D_REENTRANT -D_GNU_SOURCE -O2 -fexceptions -g -grecord-gcc-switches -pipe -Wall -Werror=format-security -fwrapv -fno-strict-aliasing -I/usr/local/include".into();
                        conf.optimize = "-O2 -g".into();
                        conf.libpth = "/usr/local/lib64 /lib64 /usr/lib64".into();
                        conf.libs = "-lpthread -lresolv -ldl -lm -lcrypt -lutil -lc".into();
                        conf.perllibs = "-lpthread -lresolv -ldl -lm -lcrypt -lutil -lc".into();
                        conf.libc = "libc.so.6".into();
                        conf.useshrplib = true;
                        conf.libperl = "libperl.so".into();
                        conf.ccdlflags =
                            "-Wl,--enable-new-dtags -Wl,-z,relro -Wl,--as-needed -Wl,-z,now".into();
                        conf.lddlflags = "-lpthread -shared -Wl,-z,relro -Wl,--as-needed -Wl,-z,now -L/usr/local/lib -fstack-protector-strong".into();
                        conf.patches = [
                            "Fedora Patch1: Removes date check, Fedora/RHEL specific",
                            "Fedora Patch3: support for libdir64",
                            "Fedora Patch4: use libresolv instead of libbind",
                            "Fedora Patch5: USE_MM_LD_RUN_PATH",
                            "Fedora Patch6: Provide MM::maybe_command independently (bug #1129443)",
                            "Fedora Patch7: Dont run one io test due to random builder failures",
                            "Fedora Patch9: Define SONAME for libperl.so",
                            "Fedora Patch10: Install libperl.so to -Dshrpdir value",
                            "Fedora Patch11: Replace EU::MakeMaker dependency with EU::MM::Utils in IPC::Cmd (bug #1129443)",
                            "Fedora Patch12: Link XS modules to pthread library to fix linking with -z defs",
                            "Fedora Patch13: Pass the correct CFLAGS to dtrace",
                            "Fedora Patch200: Link XS modules to libperl.so with EU::CBuilder on Linux",
                            "Fedora Patch201: Link XS modules to libperl.so with EU::MM on Linux",
                        ]
                        .iter()
                        .map(|s| s.to_string())
                        .collect();
                        inc = vec![
                            format!("/usr/local/lib64/perl5/{v2}"),
                            format!("/usr/local/share/perl5/{v2}"),
                            "/usr/lib64/perl5/vendor_perl".into(),
                            "/usr/share/perl5/vendor_perl".into(),
                            "/usr/lib64/perl5".into(),
                            "/usr/share/perl5".into(),
                        ];
                        archlib = "/usr/lib64/perl5".into();
                        privlib = "/usr/share/perl5".into();
                        make_cmd = "/usr/bin/make";
                    }
                    _ => {
                        conf = PerlConf::unix(
                            "linux",
                            kernel.clone(),
                            "x86_64-linux-thread-multi".into(),
                        );
                        conf.uname =
                            format!("linux arch {kernel} #1 smp preempt_dynamic x86_64 gnulinux ");
                        conf.config_args = format!(
                            "-des -Dusethreads -Duseshrplib -Doptimize=-march=x86-64 -mtune=generic -O2 -pipe -fno-plt -fexceptions -Wp,-D_FORTIFY_SOURCE=3 -Wformat -Werror=format-security -fstack-clash-protection -fcf-protection -Dprefix=/usr -Dvendorprefix=/usr -Dprivlib=/usr/share/perl5/core_perl -Darchlib=/usr/lib/perl5/{v2}/core_perl -Dsitelib=/usr/share/perl5/site_perl -Dsitearch=/usr/lib/perl5/{v2}/site_perl -Dvendorlib=/usr/share/perl5/vendor_perl -Dvendorarch=/usr/lib/perl5/{v2}/vendor_perl -Dscriptdir=/usr/bin/core_perl -Dsitescript=/usr/bin/site_perl -Dvendorscript=/usr/bin/vendor_perl -Dinc_version_list=none -Dman1ext=1perl -Dman3ext=3perl -Dlddlflags=-shared -Wl,-O1 -Wl,--sort-common -Wl,--as-needed -Wl,-z,relro -Wl,-z,now -Dldflags=-Wl,-O1 -Wl,--sort-common -Wl,--as-needed -Wl,-z,relro -Wl,-z,now"
                        );
                        conf.optimize =
                            "-march=x86-64 -mtune=generic -O2 -pipe -fno-plt -fexceptions".into();
                        conf.ccflags = "-D_REENTRANT -D_GNU_SOURCE -fwrapv -fno-strict-aliasing -pipe -fstack-protector-strong -I/usr/local/include -D_LARGEFILE_SOURCE -D_FILE_OFFSET_BITS=64".into();
                        conf.useshrplib = true;
                        conf.libperl = "libperl.so".into();
                        conf.libc = "/usr/lib/libc.so.6".into();
                        conf.libpth = "/usr/local/lib /usr/lib/gcc/x86_64-pc-linux-gnu/14.2.1/include-fixed /usr/lib /lib".into();
                        inc = vec![
                            format!("/usr/lib/perl5/{v2}/site_perl"),
                            "/usr/share/perl5/site_perl".into(),
                            format!("/usr/lib/perl5/{v2}/vendor_perl"),
                            "/usr/share/perl5/vendor_perl".into(),
                            format!("/usr/lib/perl5/{v2}/core_perl"),
                            "/usr/share/perl5/core_perl".into(),
                        ];
                        archlib = format!("/usr/lib/perl5/{v2}/core_perl");
                        privlib = "/usr/share/perl5/core_perl".into();
                        make_cmd = "/usr/bin/make";
                    }
                }
                conf.threads = true;
                conf.gccversion = d.gcc.into();
                conf.gnulibc = d.glibc.into();
                perl_path = "/usr/bin/perl".into();
            } else {
                let threads = rng.chance(300);
                let (minor, _) = perl_parts(&perl);
                let ld = !bits32 && rng.chance(40);
                let quad = !bits32 && !ld && minor >= 22 && rng.chance(15);
                let mut arch = String::from(if cpu == "aarch64" {
                    "aarch64-linux"
                } else if bits32 {
                    "i686-linux"
                } else {
                    "x86_64-linux"
                });
                if threads {
                    arch.push_str("-thread-multi");
                }
                if bits32 {
                    arch.push_str("-64int");
                }
                if ld {
                    arch.push_str("-ld");
                }
                if quad {
                    arch.push_str("-quadmath");
                }
                conf = PerlConf::unix("linux", kernel.clone(), arch.clone());
                conf.threads = threads;
                conf.longdouble = ld;
                conf.quadmath = quad;
                conf.bits32 = bits32;
                conf.uname = format!(
                    "linux {} {kernel} #1 smp {} {cpu} gnulinux ",
                    host(rng),
                    d.label
                );
                let (prefix, root) = built_prefix(rng, &perl, threads);
                perlbrew_root = root;
                let v = perl.split(' ').next().unwrap_or(&perl).to_string();
                let (i, a, p) = prefix_layout(&prefix, &v, &arch);
                inc = i;
                archlib = a;
                privlib = p;
                let mut args = if perlbrew_root.is_some() {
                    format!("-de -Dprefix={prefix} -Aeval:scriptdir={prefix}/bin")
                } else {
                    format!("-des -Dprefix={prefix} -Dscriptdir={prefix}/bin")
                };
                if threads {
                    args.push_str(" -Dusethreads");
                }
                if ld {
                    args.push_str(" -Duselongdouble");
                }
                if quad {
                    args.push_str(" -Dusequadmath");
                }
                if minor % 2 == 1 {
                    args.push_str(" -Dusedevel");
                }
                if rng.chance(80) {
                    args.push_str(" -DDEBUGGING");
                    conf.debugging = true;
                    conf.optimize = "-O2 -g".into();
                }
                if bits32 {
                    args.push_str(" -Duse64bitint -Accflags=-m32 -Aldflags=-m32");
                }
                conf.config_args = args;
                if threads {
                    conf.ccflags.insert_str(0, "-D_REENTRANT -D_GNU_SOURCE ");
                    conf.cppflags.insert_str(0, "-D_REENTRANT -D_GNU_SOURCE ");
                }
                if minor < 20 {
                    conf.ccflags = conf.ccflags.replace("-fwrapv ", "").replace("-strong", "");
                    conf.cppflags = conf.cppflags.replace("-fwrapv ", "").replace("-strong", "");
                    conf.ldflags = conf.ldflags.replace("-strong", "");
                    conf.lddlflags = conf.lddlflags.replace("-strong", "");
                }
                conf.gccversion = d.gcc.into();
                conf.gnulibc = d.glibc.into();
                conf.libpth = if cpu == "aarch64" {
                    "/usr/local/lib /usr/lib/aarch64-linux-gnu /usr/lib /lib/aarch64-linux-gnu /lib"
                        .into()
                } else if d.kind == 1 || d.label == "opensuse" {
                    "/usr/local/lib /usr/lib64 /lib64 /usr/lib".into()
                } else {
                    "/usr/local/lib /usr/lib/x86_64-linux-gnu /usr/lib /lib/x86_64-linux-gnu /lib64 /usr/lib64".into()
                };
                conf.libc = if d.glibc.is_empty() {
                    "/lib/ld-musl-x86_64.so.1".into()
                } else if minor < 24 {
                    format!("libc-{}.so", d.glibc)
                } else {
                    "libc.so.6".into()
                };
                perl_path = format!("{prefix}/bin/perl");
                make_cmd = if rng.chance(500) {
                    "make"
                } else {
                    "/usr/bin/make"
                };
            }
            if d.kind == 1 && d.gcc.starts_with("4.") {
                make = MakeFlavor::GnuOld;
            }
        }
        Os::FreeBsd => {
            const VERSIONS: &[(&str, &str)] = &[
                ("12.4-release-p9", "13.0.0"),
                ("13.2-release-p11", "14.0.5"),
                ("13.3-release-p4", "17.0.6"),
                ("13.4-release", "18.1.5"),
                ("14.0-release-p6", "16.0.6"),
                ("14.1-release", "18.1.5"),
                ("14.1-release-p5", "18.1.5"),
                ("14.2-release", "18.1.6"),
                ("14.2-release-p1", "18.1.6"),
                ("15.0-current", "19.1.7"),
            ];
            let (osv, clangv) = *rng.pick(VERSIONS);
            let arm = rng.chance(80);
            let cpu = if arm { "arm64" } else { "amd64" };
            let system = rng.chance(400);
            clang = true;
            make = MakeFlavor::Bsd;
            if system {
                perl = (*rng.pick(&["5.36.3", "5.38.2", "5.40.1", "5.40.2"])).to_string();
            }
            let (minor, _) = perl_parts(&perl);
            let v2 = perl_major(minor);
            let threads = system || rng.chance(300);
            let arch = format!(
                "{cpu}-freebsd{}",
                if threads { "-thread-multi" } else { "" }
            );
            conf = PerlConf::unix("freebsd", osv.to_string(), arch.clone());
            conf.threads = threads;
            conf.uname = format!(
                "freebsd {} {osv} freebsd {osv} releng/{}-n2{} generic {cpu} ",
                host(rng),
                &osv[..4],
                rng.range(50000, 69999)
            );
            conf.gccversion = format!(
                "FreeBSD Clang {clangv} (https://github.com/llvm/llvm-project.git llvmorg-{clangv}-0-g{})",
                hex_string(rng, 12)
            );
            conf.ccflags = "-DHAS_FPSETMASK -DHAS_FLOATINGPOINT_H -fno-strict-aliasing -pipe -fstack-protector-strong -I/usr/local/include -D_LARGEFILE_SOURCE -D_FILE_OFFSET_BITS=64".into();
            conf.cppflags = "-DHAS_FPSETMASK -DHAS_FLOATINGPOINT_H -fno-strict-aliasing -pipe -fstack-protector-strong -I/usr/local/include".into();
            conf.libpth = format!(
                "/usr/lib /usr/local/lib /usr/bin/../lib/clang/{}/lib /usr/lib",
                clangv.split('.').next().unwrap_or("18")
            );
            conf.libs = "-lpthread -lgdbm -lm -lcrypt -lutil".into();
            conf.perllibs = "-lpthread -lm -lcrypt -lutil".into();
            conf.ccdlflags = "-Wl,-E ".into();
            conf.lddlflags = "-shared  -L/usr/local/lib -fstack-protector-strong".into();
            if system {
                conf.config_args = format!(
                    "-Accflags=-DUSE_THREAD_SAFE_LOCALE -sde -Dprefix=/usr/local -Dlibperl=libperl.so.{perl} -Darchlib=/usr/local/lib/perl5/{v2}/mach -Dprivlib=/usr/local/lib/perl5/{v2} -Dman3dir=/usr/local/lib/perl5/{v2}/perl/man/man3 -Dman1dir=/usr/local/share/man/man1 -Dsitearch=/usr/local/lib/perl5/site_perl/mach/{v2} -Dsitelib=/usr/local/lib/perl5/site_perl -Dscriptdir=/usr/local/bin -Dsiteman3dir=/usr/local/lib/perl5/site_perl/man/man3 -Dsiteman1dir=/usr/local/share/man/man1 -Ui_malloc -Ui_iconv -Uinstallusrbinperl -Dcc=cc -Duseshrplib -Dinc_version_list=none -Dcf_by=mat -Dcf_email=mat@FreeBSD.org -Alddlflags=-L/usr/local/lib/perl5/{v2}/mach/CORE -lperl -Doptimize=-O2 -pipe  -fstack-protector-strong -fno-strict-aliasing  -Dusedtrace -Ui_gdbm -Dusethreads=y -Dusemymalloc=n -Duse64bitint"
                );
                conf.ccflags.insert_str(0, "-DUSE_THREAD_SAFE_LOCALE ");
                conf.useshrplib = true;
                conf.libperl = format!("libperl.so.{perl}");
                conf.ccdlflags = format!("  -Wl,-R/usr/local/lib/perl5/{v2}/mach/CORE");
                conf.lddlflags = format!(
                    "-shared  -L/usr/local/lib/perl5/{v2}/mach/CORE -lperl -L/usr/local/lib -fstack-protector-strong"
                );
                inc = vec![
                    format!("/usr/local/lib/perl5/site_perl/mach/{v2}"),
                    "/usr/local/lib/perl5/site_perl".into(),
                    format!("/usr/local/lib/perl5/{v2}/mach"),
                    format!("/usr/local/lib/perl5/{v2}"),
                ];
                archlib = format!("/usr/local/lib/perl5/{v2}/mach");
                privlib = format!("/usr/local/lib/perl5/{v2}");
                perl_path = "/usr/local/bin/perl".into();
            } else {
                let (prefix, root) = built_prefix(rng, &perl, threads);
                perlbrew_root = root;
                let v = perl.split(' ').next().unwrap_or(&perl).to_string();
                let (i, a, p) = prefix_layout(&prefix, &v, &arch);
                inc = i;
                archlib = a;
                privlib = p;
                conf.config_args = format!(
                    "-de -Dprefix={prefix}{}{}",
                    if threads { " -Dusethreads" } else { "" },
                    if minor % 2 == 1 { " -Dusedevel" } else { "" }
                );
                perl_path = format!("{prefix}/bin/perl");
            }
        }
        Os::Darwin => {
            const VERSIONS: &[(&str, &str, &str)] = &[
                ("21.6.0", "12.7", "Apple LLVM 14.0.0 (clang-1400.0.29.102)"),
                ("22.6.0", "13.6", "Apple LLVM 14.0.0 (clang-1400.0.29.202)"),
                ("23.4.0", "14.4", "Apple LLVM 15.0.0 (clang-1500.3.9.4)"),
                ("23.6.0", "14.6", "Apple LLVM 15.0.0 (clang-1500.3.9.4)"),
                ("24.1.0", "15.1", "Apple LLVM 16.0.0 (clang-1600.0.26.4)"),
                ("24.3.0", "15.3", "Apple LLVM 16.0.0 (clang-1600.0.26.6)"),
                ("24.5.0", "15.5", "Apple LLVM 17.0.0 (clang-1700.0.13.3)"),
            ];
            let (osv, mac, cc) = *rng.pick(VERSIONS);
            let arm = rng.chance(650);
            let kind = rng.below(100);
            clang = true;
            make = MakeFlavor::GnuOld;
            if kind >= 80 {
                perl = if osv.starts_with("21") {
                    "5.30.3".into()
                } else {
                    "5.34.1".into()
                };
            } else if kind >= 62 {
                perl = (*rng.pick(&["5.40.0", "5.40.1", "5.40.2", "5.38.2"])).to_string();
            }
            let (minor, _) = perl_parts(&perl);
            let v2 = perl_major(minor);
            let threads = kind >= 62 || rng.chance(250);
            let arch = if threads {
                "darwin-thread-multi-2level"
            } else {
                "darwin-2level"
            }
            .to_string();
            conf = PerlConf::unix("darwin", osv.to_string(), arch.clone());
            conf.threads = threads;
            conf.uname = format!(
                "darwin {}.local {osv} darwin kernel version {osv}: {} pdt; root:xnu-{}~1release_{} {} ",
                host(rng),
                compiled_at(rng, minor).to_lowercase(),
                rng.range(8000, 11500),
                if arm { "arm64_t6000" } else { "x86_64" },
                if arm { "arm64" } else { "x86_64" }
            );
            conf.gccversion = cc.into();
            conf.ccflags = format!(
                "-fno-common -DPERL_DARWIN -mmacosx-version-min={mac} -DNO_THREAD_SAFE_QUERYLOCALE -DNO_POSIX_2008_LOCALE -fno-strict-aliasing -pipe -fstack-protector-strong -I/usr/local/include -DPERL_USE_SAFE_PUTENV"
            );
            conf.cppflags =
                "-fno-strict-aliasing -pipe -fstack-protector-strong -I/usr/local/include".into();
            conf.optimize = "-O3".into();
            conf.libpth = "/Library/Developer/CommandLineTools/SDKs/MacOSX.sdk/usr/lib /usr/local/lib /usr/lib".into();
            conf.libs = String::new();
            conf.perllibs = String::new();
            conf.so = "dylib";
            conf.dlext = "bundle";
            conf.ccdlflags = " ".into();
            conf.cccdlflags = " ".into();
            conf.lddlflags = format!(
                " -mmacosx-version-min={mac} -bundle -undefined dynamic_lookup -L/usr/local/lib -fstack-protector-strong"
            );
            if kind >= 80 {
                conf.config_args = "-ds -e -Dprefix=/usr -Dccflags=-g  -pipe  -Dldflags= -Dman3ext=3pm -Duseithreads -Duseshrplib -Dinc_version_list=none -Dcc=cc".into();
                conf.useshrplib = true;
                conf.libperl = "libperl.dylib".into();
                inc = vec![
                    format!("/Library/Perl/{v2}/darwin-thread-multi-2level"),
                    format!("/Library/Perl/{v2}"),
                    format!("/Network/Library/Perl/{v2}/darwin-thread-multi-2level"),
                    format!("/Network/Library/Perl/{v2}"),
                    format!("/Library/Perl/Updates/{perl}"),
                    format!("/System/Library/Perl/{v2}/darwin-thread-multi-2level"),
                    format!("/System/Library/Perl/{v2}"),
                    format!("/System/Library/Perl/Extras/{v2}/darwin-thread-multi-2level"),
                    format!("/System/Library/Perl/Extras/{v2}"),
                ];
                archlib = format!("/System/Library/Perl/{v2}/darwin-thread-multi-2level");
                privlib = format!("/System/Library/Perl/{v2}");
                perl_path = "/usr/bin/perl".into();
            } else if kind >= 62 {
                let cellar = format!("/opt/homebrew/Cellar/perl/{perl}");
                conf.config_args = format!(
                    "-des -Dinstallstyle=lib/perl5 -Dinstallprefix={cellar} -Dprefix=/opt/homebrew/opt/perl -Dsiteprefix=/opt/homebrew -Dprivlib=/opt/homebrew/opt/perl/lib/perl5/{v2} -Dsitelib=/opt/homebrew/lib/perl5/site_perl/{v2} -Dotherlibdirs=/opt/homebrew/lib/perl5/site_perl/{v2} -Dperlpath=/opt/homebrew/opt/perl/bin/perl -Dstartperl=#!/opt/homebrew/opt/perl/bin/perl -Dman1dir=/opt/homebrew/opt/perl/share/man/man1 -Dman3dir=/opt/homebrew/opt/perl/share/man/man3 -Duseshrplib -Duselargefiles -Dusethreads"
                );
                conf.useshrplib = true;
                conf.libperl = "libperl.dylib".into();
                inc = vec![
                    format!("/opt/homebrew/lib/perl5/site_perl/{v2}/darwin-thread-multi-2level"),
                    format!("/opt/homebrew/lib/perl5/site_perl/{v2}"),
                    format!("/opt/homebrew/opt/perl/lib/perl5/{v2}/darwin-thread-multi-2level"),
                    format!("/opt/homebrew/opt/perl/lib/perl5/{v2}"),
                ];
                archlib =
                    format!("/opt/homebrew/opt/perl/lib/perl5/{v2}/darwin-thread-multi-2level");
                privlib = format!("/opt/homebrew/opt/perl/lib/perl5/{v2}");
                perl_path = "/opt/homebrew/opt/perl/bin/perl".into();
            } else {
                let (prefix, root) = built_prefix(rng, &perl, threads);
                perlbrew_root = root;
                let v = perl.split(' ').next().unwrap_or(&perl).to_string();
                let (i, a, p) = prefix_layout(&prefix, &v, &arch);
                inc = i;
                archlib = a;
                privlib = p;
                conf.config_args = format!(
                    "-de -Dprefix={prefix} -Aeval:scriptdir={prefix}/bin{}",
                    if threads { " -Dusethreads" } else { "" }
                );
                perl_path = format!("{prefix}/bin/perl");
            }
        }
        Os::Win32 => {
            windows = true;
            const STRAWBERRY: &[&str] = &[
                "5.26.3", "5.28.2", "5.30.3", "5.32.1", "5.36.3", "5.38.2", "5.38.4", "5.40.0",
                "5.40.2",
            ];
            let (m, _) = perl_parts(&perl);
            if m < 26 || m % 2 == 1 || perl.contains(' ') {
                perl = (*rng.pick(STRAWBERRY)).to_string();
            }
            let (minor, _) = perl_parts(&perl);
            let osv = *rng.pick(&[
                "10.0.19045.5247",
                "10.0.22631.4602",
                "10.0.26100.2605",
                "10.0.17763.6659",
                "6.3.9600",
                "10.0.20348.2966",
            ]);
            let bits32 = rng.chance(40);
            let arch = if bits32 {
                "MSWin32-x86-multi-thread-64int"
            } else {
                "MSWin32-x64-multi-thread"
            };
            conf = PerlConf::unix("MSWin32", osv.to_string(), arch.to_string());
            conf.threads = true;
            conf.bits32 = bits32;
            conf.llp64 = true;
            let gcc = if minor >= 36 {
                "13.2.0"
            } else if minor >= 30 {
                "8.3.0"
            } else {
                "7.1.0"
            };
            let sp = if rng.chance(800) {
                "C:\\Strawberry".to_string()
            } else {
                format!("C:\\strawberry-{perl}")
            };
            conf.uname = format!(
                "Win32 strawberry-perl {perl}.1 #1 {} {}",
                compiled_at(rng, minor),
                if bits32 { "i386" } else { "x64" }
            );
            conf.config_args = "undef".into();
            conf.cc = "gcc".into();
            conf.ccflags = format!(
                " -DWIN32 {}-DPERL_TEXTMODE_SCRIPTS -DMULTIPLICITY -DPERL_IMPLICIT_SYS -DUSE_PERLIO -D__USE_MINGW_ANSI_STDIO -fwrapv -fno-strict-aliasing -mms-bitfields",
                if bits32 { "" } else { "-DWIN64 " }
            );
            conf.cppflags = "-DWIN32".into();
            conf.optimize = "-O2".into();
            conf.gccversion = gcc.into();
            conf.ld = "g++".into();
            conf.ldflags = format!("-s -L\"{sp}\\perl\\lib\\CORE\" -L\"{sp}\\c\\lib\"");
            conf.libpth = format!(
                "{sp}\\c\\lib {sp}\\c\\x86_64-w64-mingw32\\lib {sp}\\c\\lib\\gcc\\x86_64-w64-mingw32\\{gcc}"
            );
            conf.libs = " -lmoldname -lkernel32 -luser32 -lgdi32 -lwinspool -lcomdlg32 -ladvapi32 -lshell32 -lole32 -loleaut32 -lnetapi32 -luuid -lws2_32 -lmpr -lwinmm -lversion -lodbc32 -lodbccp32 -lcomctl32".into();
            conf.perllibs = conf.libs.clone();
            conf.libc = String::new();
            conf.so = "dll";
            conf.useshrplib = true;
            conf.libperl = format!("libperl5{minor}.a");
            conf.dlsrc = "dl_win32.xs";
            conf.dlext = "xs.dll";
            conf.ccdlflags = " ".into();
            conf.cccdlflags = " ".into();
            conf.lddlflags = format!("-mdll -s -L\"{sp}\\perl\\lib\\CORE\" -L\"{sp}\\c\\lib\"");
            let sp_fwd = sp.replace('\\', "/");
            inc = vec![
                format!("{sp_fwd}/perl/site/lib"),
                format!("{sp_fwd}/perl/vendor/lib"),
                format!("{sp_fwd}/perl/lib"),
            ];
            archlib = format!("{sp}\\perl\\lib");
            privlib = archlib.clone();
            perl_path = format!("{sp}\\perl\\bin\\perl.exe");
            make_cmd = "gmake";
            make = MakeFlavor::Gmake;
        }
        Os::OpenBsd => {
            const VERSIONS: &[(&str, &str)] = &[
                ("7.3", "5.36.0"),
                ("7.4", "5.36.1"),
                ("7.5", "5.36.3"),
                ("7.6", "5.38.2"),
                ("7.7", "5.40.1"),
            ];
            let (osv, sys) = *rng.pick(VERSIONS);
            let system = rng.chance(700);
            if system {
                perl = sys.to_string();
            }
            let (minor, _) = perl_parts(&perl);
            let arch = "OpenBSD.amd64-openbsd".to_string();
            conf = PerlConf::unix("openbsd", osv.to_string(), arch.clone());
            conf.uname = format!(
                "openbsd {} {osv} generic.mp#{} amd64 ",
                host(rng),
                rng.range(10, 400)
            );
            conf.gccversion = "4.2.1 Compatible OpenBSD Clang 16.0.6".into();
            conf.ccflags = "-fno-strict-aliasing -fno-delete-null-pointer-checks -pipe -fstack-protector-strong -I/usr/local/include".into();
            conf.cppflags = conf.ccflags.clone();
            conf.libpth = "/usr/lib /usr/local/lib".into();
            conf.libs = "-lm -lutil -lc".into();
            conf.perllibs = "-lm -lutil -lc".into();
            conf.libc = "/usr/lib/libc.so.100.0".into();
            conf.ccdlflags = "-Wl,-E ".into();
            conf.cccdlflags = "-DPIC -fPIC ".into();
            conf.lddlflags = "-shared -fPIC  -fstack-protector-strong".into();
            clang = true;
            make = MakeFlavor::Bsd;
            if system {
                conf.config_args = "-dsE -Dopenbsd_distribution=defined -Dmksymlinks".into();
                conf.useshrplib = true;
                conf.libperl = "libperl.so.25.0".into();
                inc = vec![
                    "/usr/local/libdata/perl5/site_perl/amd64-openbsd".into(),
                    "/usr/libdata/perl5/site_perl".into(),
                    "/usr/libdata/perl5/amd64-openbsd".into(),
                    "/usr/libdata/perl5".into(),
                ];
                archlib = "/usr/libdata/perl5/amd64-openbsd".into();
                privlib = "/usr/libdata/perl5".into();
                perl_path = "/usr/bin/perl".into();
            } else {
                let (prefix, root) = built_prefix(rng, &perl, false);
                perlbrew_root = root;
                let v = perl.split(' ').next().unwrap_or(&perl).to_string();
                let (i, a, p) = prefix_layout(&prefix, &v, &arch);
                inc = i;
                archlib = a;
                privlib = p;
                conf.config_args = format!(
                    "-de -Dprefix={prefix}{}",
                    if minor % 2 == 1 { " -Dusedevel" } else { "" }
                );
                perl_path = format!("{prefix}/bin/perl");
            }
        }
        _ => {
            // NetBSD, Solaris, Cygwin, DragonFly, MidnightBSD, Haiku: a built or packaged perl in
            // a standard prefix layout.
            let (osname, osv, arch_base, gcc, prefix_sys): (
                &'static str,
                String,
                &str,
                &str,
                &str,
            ) = match os {
                Os::NetBsd => {
                    let v = *rng.pick(&["9.3", "9.4", "10.0", "10.1"]);
                    make = MakeFlavor::Bsd;
                    (
                        "netbsd",
                        v.to_string(),
                        "x86_64-netbsd",
                        if v.starts_with('9') {
                            "7.5.0"
                        } else {
                            "10.5.0"
                        },
                        "/usr/pkg",
                    )
                }
                Os::Solaris => {
                    make_cmd = "/usr/bin/gmake";
                    (
                        "solaris",
                        "2.11".to_string(),
                        "i86pc-solaris-64",
                        *rng.pick(&["10.4.0", "7.3.0", "13.2.0"]),
                        "/opt/perl",
                    )
                }
                Os::Cygwin => {
                    make_cmd = "/usr/bin/make";
                    (
                        "cygwin",
                        (*rng.pick(&["3.5.4-1.x86_64", "3.4.10-1.x86_64", "3.6.0-1.x86_64"]))
                            .to_string(),
                        "x86_64-cygwin-threads",
                        "12.4.0",
                        "/usr",
                    )
                }
                Os::DragonFly => {
                    make = MakeFlavor::Bsd;
                    (
                        "dragonfly",
                        "6.4-release".to_string(),
                        "x86_64-dragonfly",
                        "8.3 [DragonFly] Release/2019-02-22",
                        "/usr/local",
                    )
                }
                Os::MidnightBsd => {
                    make = MakeFlavor::Bsd;
                    clang = true;
                    (
                        "midnightbsd",
                        "3.2".to_string(),
                        "amd64-midnightbsd",
                        "4.2.1 Compatible Clang 15.0.7",
                        "/usr/local",
                    )
                }
                _ => (
                    "haiku",
                    "r1~beta5".to_string(),
                    "x86_64-haiku",
                    "13.3.0",
                    "/boot/system",
                ),
            };
            let packaged = rng.chance(450);
            if packaged || os == Os::Cygwin {
                perl = (*rng.pick(&["5.36.3", "5.38.2", "5.40.0", "5.40.2"])).to_string();
            }
            let (minor, _) = perl_parts(&perl);
            let threads = os == Os::Cygwin || packaged || rng.chance(250);
            let arch = if threads && os != Os::Cygwin {
                format!("{arch_base}-thread-multi")
            } else if os == Os::Cygwin {
                format!("{arch_base}-multi")
            } else {
                arch_base.to_string()
            };
            conf = PerlConf::unix(osname, osv.clone(), arch.clone());
            conf.threads = threads;
            conf.uname = format!("{osname} {} {osv} {osname} {osv} amd64 ", host(rng));
            conf.gccversion = gcc.into();
            if os == Os::Cygwin {
                conf.so = "dll";
                conf.dlext = "dll";
                conf.useshrplib = true;
                conf.libperl = "cygperl5_40.dll".into();
                conf.libs = "-lpthread -lgdbm -ldb -ldl -lcrypt -lgdbm_compat".into();
            }
            let v = perl.split(' ').next().unwrap_or(&perl).to_string();
            let (prefix, root) = if packaged || os == Os::Cygwin {
                (prefix_sys.to_string(), None)
            } else {
                built_prefix(rng, &perl, threads)
            };
            perlbrew_root = root;
            let (i, a, p) = prefix_layout(&prefix, &v, &arch);
            inc = i;
            archlib = a;
            privlib = p;
            conf.config_args = format!(
                "-des -Dprefix={prefix}{}{}",
                if threads { " -Dusethreads" } else { "" },
                if minor % 2 == 1 { " -Dusedevel" } else { "" }
            );
            perl_path = format!("{prefix}/bin/perl");
        }
    }

    let (minor, sub) = perl_parts(&perl);
    if perl.contains("RC") {
        conf.patches
            .insert(0, perl.split(' ').nth(1).unwrap_or("RC1").to_string());
    } else if perl.contains("patch") {
        let sha = hex_string(rng, 40);
        conf.patches.insert(0, format!("SMOKE{sha}"));
        conf.commit = Some(sha);
    } else if minor % 2 == 1 && rng.chance(300) {
        conf.commit = Some(hex_string(rng, 40));
    }
    conf.compiled_at = compiled_at(rng, minor);

    // perl -V
    let mut perl_v = String::with_capacity(4096);
    render_perl_v(&conf, minor, sub, &mut perl_v);

    // Toolchain versions.
    let mut era = ((minor.saturating_sub(8)) as usize * 12 / 34).min(12);
    if rng.chance(350) {
        era = (era + 1).min(12);
    }
    let mut toolchain_rows: Vec<(&'static str, &'static str)> = Vec::with_capacity(TOOLCHAIN.len());
    for (name, versions) in TOOLCHAIN {
        let mut idx = era;
        if rng.chance(200) {
            idx = idx.saturating_sub(1);
        }
        let mut have = versions[idx];
        if (*name == "JSON"
            || *name == "YAML"
            || *name == "YAML::Syck"
            || *name == "Module::Signature")
            && rng.chance(450)
        {
            have = "n/a";
        }
        if *name == "Module::Build" && minor >= 22 && rng.chance(250) {
            have = "n/a";
        }
        toolchain_rows.push((name, have));
    }
    let new_wstat = toolchain_rows
        .iter()
        .find(|(n, _)| *n == "Test::Harness")
        .map(|(_, v)| v.starts_with("3.4") && *v >= "3.44" || v.starts_with("3.5"))
        .unwrap_or(false);
    let toolchain = render_toolchain(&toolchain_rows);

    // Environment.
    let path_sep = if windows { ';' } else { ':' };
    let dir_sep = if windows { '\\' } else { '/' };
    let perl_bin_dir = perl_path
        .rsplit_once(dir_sep)
        .map(|(d, _)| d.to_string())
        .unwrap_or_default();
    let mut env: Vec<(&'static str, String)> = Vec::with_capacity(24);
    let mut common: Vec<(&'static str, String)> = Vec::with_capacity(12);
    if windows {
        common.push(("COMSPEC", "C:\\Windows\\system32\\cmd.exe".into()));
        common.push((
            "NUMBER_OF_PROCESSORS",
            num(*rng.pick(&[2usize, 4, 8, 12, 16])),
        ));
        common.push(("PATH", format!("{perl_bin_dir}\\..\\..\\c\\bin;{perl_bin_dir}\\..\\site\\bin;{perl_bin_dir};C:\\Windows\\system32;C:\\Windows;C:\\Windows\\System32\\Wbem;C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\;C:\\Program Files\\Git\\cmd")));
        common.push((
            "PROCESSOR_IDENTIFIER",
            (*rng.pick(&[
                "Intel64 Family 6 Model 158 Stepping 10, GenuineIntel",
                "AMD64 Family 25 Model 33 Stepping 0, AuthenticAMD",
                "Intel64 Family 6 Model 142 Stepping 12, GenuineIntel",
            ]))
            .to_string(),
        ));
        common.push(("TEMP", format!("{home}\\AppData\\Local\\Temp")));
        common.push(("TMP", format!("{home}\\AppData\\Local\\Temp")));
    } else {
        let lang = *rng.pick(&[
            "C.UTF-8",
            "en_US.UTF-8",
            "en_US.UTF-8",
            "en_GB.UTF-8",
            "de_DE.UTF-8",
            "C",
            "en_US.utf8",
            "POSIX",
            "fr_FR.UTF-8",
            "ja_JP.UTF-8",
        ]);
        common.push(("LANG", lang.into()));
        if rng.chance(100) {
            common.push(("LC_ALL", "C".into()));
        }
        let base_path = match os {
            Os::Darwin => "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            Os::FreeBsd | Os::DragonFly | Os::MidnightBsd => {
                "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin"
            }
            Os::OpenBsd => {
                "/bin:/sbin:/usr/bin:/usr/sbin:/usr/X11R6/bin:/usr/local/bin:/usr/local/sbin"
            }
            Os::NetBsd => "/usr/bin:/bin:/usr/sbin:/sbin:/usr/pkg/bin:/usr/pkg/sbin:/usr/local/bin",
            Os::Solaris => "/usr/gnu/bin:/usr/bin:/usr/sbin:/sbin:/opt/perl/bin",
            _ => "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        };
        let path = if let Some(root) = &perlbrew_root {
            format!("{root}/bin:{perl_bin_dir}:{base_path}")
        } else if perl_bin_dir.starts_with("/usr/bin") || perl_bin_dir.starts_with("/bin") {
            base_path.to_string()
        } else {
            format!("{perl_bin_dir}:{base_path}")
        };
        common.push(("PATH", path));
        common.push((
            "SHELL",
            (*rng.pick(&[
                "/bin/bash",
                "/bin/bash",
                "/bin/sh",
                "/usr/local/bin/bash",
                "/bin/zsh",
                "/bin/ksh",
                "/bin/tcsh",
            ]))
            .to_string(),
        ));
        common.push((
            "TERM",
            (*rng.pick(&[
                "xterm-256color",
                "screen",
                "dumb",
                "xterm",
                "tmux-256color",
                "screen-256color",
                "linux",
            ]))
            .to_string(),
        ));
        if let Some(root) = &perlbrew_root {
            let name = perl_bin_dir
                .trim_end_matches("/bin")
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string();
            common.push(("PERLBREW_HOME", format!("{home}/.perlbrew")));
            common.push(("PERLBREW_PATH", format!("{root}/bin:{perl_bin_dir}")));
            common.push(("PERLBREW_PERL", name));
            common.push(("PERLBREW_ROOT", root.clone()));
            common.push((
                "PERLBREW_VERSION",
                (*rng.pick(&["0.98", "0.99", "1.00", "1.01"])).to_string(),
            ));
        }
    }
    if automated {
        common.push(("AUTOMATED_TESTING", "1".into()));
    }
    if rng.chance(120) {
        common.push(("HARNESS_OPTIONS", format!("j{}", rng.range(2, 16))));
    }
    common.push((
        "PERL_CPAN_REPORTER_DIR",
        if windows {
            format!("{home}\\.cpanreporter")
        } else {
            format!("{home}/.cpanreporter")
        },
    ));
    env.extend(common.iter().cloned());
    if automated && rng.chance(800) {
        env.push(("NONINTERACTIVE_TESTING", "1".into()));
    }
    env.push(("PERL_MM_USE_DEFAULT", "1".into()));
    if rng.chance(700) {
        env.push(("PERL_EXTUTILS_AUTOINSTALL", "--defaultdeps".into()));
    }
    if era >= 6 && rng.chance(850) {
        env.push(("PERL_USE_UNSAFE_INC", "1".into()));
    }
    if !windows && rng.chance(100) {
        env.push(("TMPDIR", format!("{home}/tmp")));
    }
    let mut env_cpanm = common;
    if rng.chance(300) {
        env_cpanm.push(("PERL_MM_USE_DEFAULT", "1".into()));
    }

    // Special variables.
    let uid = if rng.chance(60) {
        0
    } else {
        rng.range(1000, 1010)
    };
    let gid = uid;
    let groups = if rng.chance(500) {
        format!("{gid} {gid}")
    } else {
        format!("{gid} {gid} {}", rng.range(20, 30))
    };
    let win_lines = if windows {
        let (osname_w, ver) = match conf.osvers.as_str() {
            v if v.starts_with("6.3") => ("Win8.1", ", 6, 3, 9600, 2, 0, 0, 256, 1"),
            v if v.starts_with("10.0.2") && !v.starts_with("10.0.20348") => {
                ("Win11", ", 10, 0, 22631, 2, 0, 0, 256, 1")
            }
            v if v.starts_with("10.0.20348") || v.starts_with("10.0.17763") => {
                ("Win2019", ", 10, 0, 17763, 2, 0, 0, 272, 3")
            }
            _ => ("Win10", ", 10, 0, 19045, 2, 0, 0, 256, 1"),
        };
        format!(
            "    Win32::GetOSName = {osname_w}\n    Win32::GetOSVersion = {ver}\n    Win32::FsType = NTFS\n    Win32::IsAdminUser = {}\n",
            usize::from(rng.chance(300))
        )
    } else {
        String::new()
    };
    let special_cpr = if windows {
        format!(
            "    $^X = {perl_path}\n    $UID/$EUID = 0 / 0\n    $GID = 0\n    $EGID = 0\n{win_lines}"
        )
    } else {
        format!(
            "    $^X = {perl_path}\n    $UID/$EUID = {uid} / {uid}\n    $GID = {groups}\n    $EGID = {groups}\n"
        )
    };
    let special_cpanm = if windows {
        format!(
            "    EGID = 0\n    EUID = 0\n    EXECUTABLE_NAME = {perl_path}\n    GID = 0\n    UID = 0\n{win_lines}"
        )
    } else {
        format!(
            "    EGID = {groups}\n    EUID = {uid}\n    EXECUTABLE_NAME = {perl_path}\n    GID = {groups}\n    UID = {uid}\n"
        )
    };

    // Build and XS tools.
    let build_root = if windows {
        let sp = perl_path.trim_end_matches("\\perl\\bin\\perl.exe");
        format!("{sp}\\cpan\\build")
    } else {
        format!("{home}/.cpan/build")
    };
    let cpanm_home = if windows {
        format!("{home}\\.cpanm")
    } else {
        format!("{home}/.cpanm")
    };
    let quoted_perl = if minor < 14 && !windows {
        perl_path.clone()
    } else {
        format!("\"{perl_path}\"")
    };
    let mm_test_cmd = if windows {
        format!(
            "{quoted_perl} \"-MExtUtils::Command::MM\" \"-MTest::Harness\" \"-e\" \"undef *Test::Harness::Switches; test_harness(0, 'blib\\lib', 'blib\\arch')\" t/*.t"
        )
    } else if minor < 14 {
        format!(
            "PERL_DL_NONLAZY=1 {quoted_perl} \"-MExtUtils::Command::MM\" \"-e\" \"test_harness(0, 'blib/lib', 'blib/arch')\" t/*.t"
        )
    } else {
        format!(
            "PERL_DL_NONLAZY=1 {quoted_perl} \"-MExtUtils::Command::MM\" \"-MTest::Harness\" \"-e\" \"undef *Test::Harness::Switches; test_harness(0, 'blib/lib', 'blib/arch')\" t/*.t"
        )
    };
    let core = if windows {
        format!("{archlib}\\CORE")
    } else {
        format!("{archlib}/CORE")
    };
    let xs_cc = format!(
        "{} -c  -I. {} {}  ",
        conf.cc,
        conf.ccflags.trim(),
        conf.optimize
    );
    let xs_core = format!("{} \"-I{core}\"", conf.cccdlflags.trim());
    let xs_ld = format!("{}  {}", conf.ld, conf.lddlflags.trim());
    let xsubpp = if windows {
        format!(
            "\"{perl_path}\" \"{privlib}\\ExtUtils\\xsubpp\"  -typemap C:\\{}\\perl\\lib\\ExtUtils\\typemap",
            "Strawberry"
        )
    } else {
        format!(
            "{quoted_perl} \"{privlib}/ExtUtils/xsubpp\"  -typemap '{privlib}/ExtUtils/typemap'"
        )
    };

    let perl_num = format!("5.{:03}{:03}", minor, sub);
    let local_lib = if local_lib && !windows {
        Some(format!("{home}/perl5/lib/perl5"))
    } else {
        None
    };
    Machine {
        osname: conf.osname,
        osversion: conf.osvers.clone(),
        archname: conf.archname.clone(),
        perl,
        perl_num,
        minor,
        sub,
        perl_path,
        windows,
        clang,
        make_cmd,
        make,
        build_root,
        cpanm_home,
        path_sep,
        dir_sep,
        env,
        env_cpanm,
        local_lib,
        special_cpr,
        special_cpanm,
        toolchain,
        era,
        new_wstat,
        perl_v,
        inc,
        mm_test_cmd,
        xs_cc,
        xs_core,
        xs_ld,
        xsubpp,
        dlext: conf.dlext,
        seed: rng.next_u64(),
    }
}

fn render_toolchain(rows: &[(&str, &str)]) -> String {
    let name_w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(6);
    let have_w = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(4);
    let mut s = String::with_capacity(40 * (rows.len() + 2));
    s.push_str("    ");
    push_padded(&mut s, "Module", name_w);
    s.push(' ');
    push_padded(&mut s, "Have", have_w);
    s.push_str("\n    ");
    for _ in 0..name_w {
        s.push('-');
    }
    s.push(' ');
    for _ in 0..have_w {
        s.push('-');
    }
    s.push('\n');
    for (name, have) in rows {
        s.push_str("    ");
        push_padded(&mut s, name, name_w);
        s.push(' ');
        push_padded(&mut s, have, have_w);
        s.push('\n');
    }
    s
}

fn compile_options(c: &PerlConf, minor: u32) -> Vec<&'static str> {
    let mut o = vec![
        "HAS_TIMES",
        "PERLIO_LAYERS",
        "PERL_DONT_CREATE_GVSV",
        "PERL_MALLOC_WRAP",
        "PERL_PRESERVE_IVUV",
        "USE_LARGE_FILES",
        "USE_LOCALE",
        "USE_LOCALE_COLLATE",
        "USE_LOCALE_CTYPE",
        "USE_LOCALE_NUMERIC",
        "USE_LOCALE_TIME",
        "USE_PERLIO",
        "USE_PERL_ATOF",
        "USE_64_BIT_INT",
    ];
    if !c.bits32 {
        o.push("USE_64_BIT_ALL");
    }
    if (20..=24).contains(&minor) {
        o.push("PERL_NEW_COPY_ON_WRITE");
    } else if minor >= 26 {
        o.push("PERL_COPY_ON_WRITE");
    }
    if minor >= 22 {
        o.push("PERL_OP_PARENT");
    }
    if (18..=26).contains(&minor) {
        o.push("PERL_HASH_FUNC_ONE_AT_A_TIME_HARD");
    } else if minor >= 28 {
        o.push("PERL_HASH_FUNC_SIPHASH13");
        o.push("PERL_HASH_USE_SBOX32");
    }
    if minor >= 32 && c.osname != "MSWin32" {
        o.push("PERL_USE_SAFE_PUTENV");
    }
    if c.threads {
        o.push("MULTIPLICITY");
        o.push("USE_ITHREADS");
        o.push("USE_REENTRANT_API");
        if minor < 36 {
            o.push("PERL_IMPLICIT_CONTEXT");
        }
        if minor >= 28 {
            o.push("USE_THREAD_SAFE_LOCALE");
        }
    }
    if c.osname == "MSWin32" {
        o.push("PERL_IMPLICIT_SYS");
        o.push("USE_NO_REGISTRY");
    }
    if c.longdouble {
        o.push("USE_LONG_DOUBLE");
        o.push("HAS_LONG_DOUBLE");
    }
    if c.quadmath {
        o.push("USE_QUADMATH");
    }
    if c.debugging {
        o.push("DEBUGGING");
    }
    o.sort_unstable();
    o
}

fn render_perl_v(c: &PerlConf, minor: u32, sub: u32, out: &mut String) {
    let new_format = minor >= 26;
    let def = |b: bool| if b { "define" } else { "undef" };
    out.push_str("Summary of my perl5 (revision 5 version ");
    push_u64(out, u64::from(minor));
    out.push_str(" subversion ");
    push_u64(out, u64::from(sub));
    out.push_str(") configuration:\n");
    if let Some(commit) = &c.commit {
        out.push_str("  Commit id: ");
        out.push_str(commit);
        out.push('\n');
    }
    out.push_str("   \n  Platform:\n");
    let longsize = if c.bits32 || c.llp64 { "4" } else { "8" };
    let ptrsize = if c.bits32 { "4" } else { "8" };
    let ivtype = if c.bits32 || c.llp64 {
        "'long long'"
    } else {
        "'long'"
    };
    let (nvtype, nvsize) = if c.quadmath {
        ("'__float128'", "16")
    } else if c.longdouble {
        ("'long double'", "16")
    } else {
        ("'double'", "8")
    };
    let q = |s: &str| format!("'{s}'");
    let platform: Vec<(&str, String)> = vec![
        ("osname", c.osname.to_string()),
        ("osvers", c.osvers.clone()),
        ("archname", c.archname.clone()),
        ("uname", q(&c.uname)),
        ("config_args", q(&c.config_args)),
        ("hint", "recommended".into()),
        ("useposix", "true".into()),
        ("d_sigaction", "define".into()),
        ("useithreads", def(c.threads).into()),
        ("usemultiplicity", def(c.threads).into()),
        ("use64bitint", "define".into()),
        ("use64bitall", def(!c.bits32).into()),
        ("uselongdouble", def(c.longdouble).into()),
        ("usemymalloc", "n".into()),
        ("default_inc_excludes_dot", def(minor >= 26).into()),
    ];
    let compiler: Vec<(&str, String)> = vec![
        ("cc", q(&c.cc)),
        ("ccflags ", q(&c.ccflags)),
        ("optimize", q(&c.optimize)),
        ("cppflags", q(&c.cppflags)),
        ("ccversion", q(&c.ccversion)),
        ("gccversion", q(&c.gccversion)),
        ("gccosandvers", "''".into()),
        ("intsize", "4".into()),
        ("longsize", longsize.into()),
        ("ptrsize", ptrsize.into()),
        ("doublesize", "8".into()),
        ("byteorder", "12345678".into()),
        ("doublekind", "3".into()),
        ("d_longlong", "define".into()),
        ("longlongsize", "8".into()),
        ("d_longdbl", "define".into()),
        (
            "longdblsize",
            if c.bits32 { "12".into() } else { "16".into() },
        ),
        ("longdblkind", "3".into()),
        ("ivtype", ivtype.into()),
        ("ivsize", "8".into()),
        ("nvtype", nvtype.into()),
        ("nvsize", nvsize.into()),
        ("Off_t", "'off_t'".into()),
        ("lseeksize", "8".into()),
        (
            "alignbytes",
            if c.quadmath || c.longdouble {
                "16".into()
            } else {
                "8".into()
            },
        ),
        ("prototype", "define".into()),
    ];
    let linker: Vec<(&str, String)> = vec![
        ("ld", q(&c.ld)),
        ("ldflags ", q(&c.ldflags)),
        ("libpth", c.libpth.clone()),
        ("libs", c.libs.clone()),
        ("perllibs", c.perllibs.clone()),
        ("libc", c.libc.clone()),
        ("so", c.so.to_string()),
        (
            "useshrplib",
            if c.useshrplib {
                "true".into()
            } else {
                "false".into()
            },
        ),
        ("libperl", c.libperl.clone()),
        ("gnulibc_version", q(&c.gnulibc)),
    ];
    let dynamic: Vec<(&str, String)> = vec![
        ("dlsrc", c.dlsrc.to_string()),
        ("dlext", c.dlext.to_string()),
        ("d_dlsymun", "undef".into()),
        ("ccdlflags", q(&c.ccdlflags)),
        ("cccdlflags", q(&c.cccdlflags)),
        ("lddlflags", q(&c.lddlflags)),
    ];
    let sections: [(&str, &Vec<(&str, String)>); 4] = [
        ("", &platform),
        ("  Compiler:\n", &compiler),
        ("  Linker and Libraries:\n", &linker),
        ("  Dynamic Linking:\n", &dynamic),
    ];
    for (title, items) in sections {
        out.push_str(title);
        if new_format {
            for (k, v) in items {
                out.push_str("    ");
                out.push_str(k);
                out.push('=');
                out.push_str(v);
                out.push('\n');
            }
        } else {
            // Old layout: several settings per line, long ones on their own.
            let mut line = String::new();
            for (k, v) in items {
                if *k == "default_inc_excludes_dot" || *k == "doublekind" || *k == "longdblkind" {
                    continue;
                }
                let item = format!("{k}={v}");
                let alone = matches!(
                    *k,
                    "uname"
                        | "config_args"
                        | "libpth"
                        | "libs"
                        | "perllibs"
                        | "optimize"
                        | "cppflags"
                );
                if !line.is_empty() && (alone || line.len() + item.len() + 2 > 76) {
                    out.push_str("    ");
                    out.push_str(&line);
                    out.push('\n');
                    line.clear();
                }
                if alone {
                    out.push_str("    ");
                    out.push_str(&item);
                    out.push('\n');
                } else {
                    if !line.is_empty() {
                        line.push_str(", ");
                    }
                    line.push_str(&item);
                }
            }
            if !line.is_empty() {
                out.push_str("    ");
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    out.push_str("\n\nCharacteristics of this binary (from libperl): \n");
    let opts = compile_options(c, minor);
    if new_format {
        out.push_str("  Compile-time options:\n");
        for o in &opts {
            out.push_str("    ");
            out.push_str(o);
            out.push('\n');
        }
    } else {
        out.push_str("  Compile-time options:");
        let mut col = 24;
        for (i, o) in opts.iter().enumerate() {
            if i > 0 && col + o.len() + 1 > 78 {
                out.push_str("\n                       ");
                col = 23;
            }
            out.push(' ');
            out.push_str(o);
            col += o.len() + 1;
        }
        out.push('\n');
    }
    if !c.patches.is_empty() {
        out.push_str("  Locally applied patches:\n");
        for p in &c.patches {
            out.push_str("    ");
            out.push_str(p);
            out.push('\n');
        }
    }
    out.push_str("  Built under ");
    out.push_str(c.osname);
    out.push_str("\n  Compiled at ");
    out.push_str(&c.compiled_at);
    out.push('\n');
}

// ---------------------------------------------------------------------------------------------
// Text report builder
// ---------------------------------------------------------------------------------------------

const PREAMBLE: &str = "This distribution has been tested as part of the CPAN Testers\nproject, supporting the Perl programming language.  See\nhttp://wiki.cpantesters.org/ for more information or email\nquestions to cpan-testers-discuss@perl.org\n\n\n--\n";
const INTRO_PASS: &str =
    "Thank you for uploading your work to CPAN.  Congratulations!\nAll tests were successful.\n";
const INTRO_FAIL: &str = "Thank you for uploading your work to CPAN.  However, there was a problem\ntesting your distribution.\n\nIf you think this report is invalid, please consult the CPAN Testers Wiki\nfor suggestions on how to avoid getting FAIL reports for missing library\nor binary dependencies, unsupported operating systems, and so on:\n\nhttp://wiki.cpantesters.org/wiki/CPANAuthorNotes\n";
const INTRO_NA: &str = "Thank you for uploading your work to CPAN.  While attempting to build or test\nthis distribution, the distribution signaled that support is not available\neither for this operating system or this version of Perl.  Nevertheless, any\ndiagnostic output produced is provided below for reference.  If this is not\nwhat you expect, you may wish to consult the CPAN Testers Wiki:\n\nhttp://wiki.cpantesters.org/wiki/CPANAuthorNotes\n";
const INTRO_UNKNOWN: &str = "Thank you for uploading your work to CPAN.  However, attempting to\ntest your distribution gave an inconclusive result.\n\nThis could be because your distribution had an error during the make/build\nstage, did not define tests, tests could not be found, because your tests were\ninterrupted before they finished, or because the results of the tests could not\nbe parsed.  You may wish to consult the CPAN Testers Wiki:\n\nhttp://wiki.cpantesters.org/wiki/CPANAuthorNotes\n";
const SECTIONS: &str = "\nSections of this report:\n\n    * Tester comments\n    * Program output\n    * Prerequisites\n    * Environment and other context\n\n------------------------------\nTESTER COMMENTS\n------------------------------\n\nAdditional comments from tester:\n\n";
const AUTOMATED_COMMENT: &str = "this report is from an automated smoke testing program\nand was not reviewed by a human for accuracy";
const RULE: &str = "------------------------------\n";

struct TestFile {
    name: String,
    planned: usize,
    skip: Option<&'static str>,
}

/// What one failing test file contributed, for the "Test Summary Report".
struct FileResult {
    name: String,
    ran: usize,
    failed: Vec<usize>,
    exit: usize,
    wstat: usize,
    signal: bool,
    parse_error: Option<String>,
    unrun: usize,
}

struct Row {
    section: usize,
    name: &'static str,
    need: &'static str,
    have: &'static str,
    /// An installed version too old for `need` (for "!" rows).
    older: Option<&'static str>,
    ok: bool,
}

/// Builds one text report. Borrows the (static) world and the stream's PRNG.
struct Builder<'a> {
    world: &'static World,
    rng: &'a mut Rng,
    tester_index: usize,
    profile: &'static Profile,
    m: &'static Machine,
    dist: &'static Dist,
    version: &'static str,
    author: &'static Author,
    grade: u8,
    cpanm: bool,
    build_dir: String,
    /// cpanm's work directory for this run (`~/.cpanm/work/<epoch>.<pid>`).
    cpanm_work: String,
    blib: Vec<String>,
    pid: usize,
    no_prereqs: bool,
    configure_phase: bool,
    missing: Option<&'static str>,
    outdated: bool,
    form: usize,
}

/// FNV-1a, for stable per-name hashing.
fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl<'a> Builder<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        world: &'static World,
        rng: &'a mut Rng,
        tester_index: usize,
        m: &'static Machine,
        dist: &'static Dist,
        version: &'static str,
        author: &'static Author,
        grade: u8,
    ) -> Builder<'a> {
        let profile = &world.profiles[tester_index];
        let cpanm = profile.style == ClientStyle::CpanmReporter;
        let pid = rng.range(1200, 99_999);
        let mut b = Builder {
            world,
            rng,
            tester_index,
            profile,
            m,
            dist,
            version,
            author,
            grade,
            cpanm,
            build_dir: String::new(),
            cpanm_work: String::new(),
            blib: Vec::new(),
            pid,
            no_prereqs: false,
            configure_phase: false,
            missing: None,
            outdated: false,
            form: 0,
        };
        b.form = b.rng.below(3);
        if cpanm {
            let sep = m.dir_sep;
            let mut work = String::with_capacity(m.cpanm_home.len() + 32);
            work.push_str(&m.cpanm_home);
            work.push(sep);
            work.push_str("work");
            work.push(sep);
            push_u64(&mut work, 1_736_000_000 + b.rng.below(40_000_000) as u64);
            work.push('.');
            push_usize(&mut work, pid);
            b.build_dir = format!("{work}{sep}{}-{version}", dist.name);
            b.cpanm_work = work;
        } else {
            b.build_dir = b.dist_build_dir(dist, version);
        }
        if !cpanm {
            let r = b.rng.below(100);
            let deps = if r < 55 {
                0
            } else if r < 80 {
                b.rng.range(1, 3)
            } else if r < 95 {
                b.rng.range(4, 10)
            } else {
                b.rng.range(11, 40)
            };
            for _ in 0..deps {
                let d = &world.dists[world.dist_zipf.sample(b.rng)];
                if std::ptr::eq(d, dist) {
                    continue;
                }
                let v = d.versions.last().map(String::as_str).unwrap_or("0.01");
                let dir = b.dist_build_dir(d, v);
                let sep = m.dir_sep;
                b.blib.push(format!("{dir}{sep}blib{sep}arch"));
                b.blib.push(format!("{dir}{sep}blib{sep}lib"));
            }
        }
        b
    }

    fn dist_build_dir(&mut self, dist: &Dist, version: &str) -> String {
        let mut s = String::with_capacity(self.m.build_root.len() + dist.name.len() + 20);
        s.push_str(&self.m.build_root);
        s.push(self.m.dir_sep);
        s.push_str(&dist.name);
        s.push('-');
        s.push_str(version);
        s.push('-');
        if self.profile.numeric_build_suffix {
            push_usize(&mut s, self.rng.skewed(12));
        } else {
            const C: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            for _ in 0..6 {
                s.push(*self.rng.pick(C) as char);
            }
        }
        s
    }

    fn build(&mut self) -> String {
        let (cmd, output) = self.program_output();
        let mut out = String::with_capacity(output.len() + self.m.perl_v.len() + 6144);
        self.header(&mut out);
        out.push_str(RULE);
        out.push_str("PROGRAM OUTPUT\n");
        out.push_str(RULE);
        out.push_str("\nOutput from '");
        out.push_str(&cmd);
        out.push_str("':\n\n");
        out.push_str(&output);
        out.push('\n');
        self.prereqs(&mut out);
        self.environment(&mut out);
        out
    }

    fn header(&mut self, out: &mut String) {
        let v = client_versions(self.tester_index);
        out.push_str(PREAMBLE);
        out.push_str("Dear ");
        out.push_str(if self.cpanm {
            &self.author.pause_id
        } else {
            &self.author.name
        });
        out.push_str(",\n\nThis is a computer-generated report for ");
        out.push_str(&self.dist.name);
        out.push('-');
        out.push_str(self.version);
        out.push_str("\non perl ");
        out.push_str(&self.m.perl);
        if self.cpanm {
            out.push_str(", created by App::cpanminus::reporter ");
            out.push_str(v.cpanm_reporter);
            out.push_str(" (");
            out.push_str(v.cpanm);
            out.push_str(").\n\n");
        } else {
            out.push_str(", created by CPAN-Reporter-");
            out.push_str(v.cpan_reporter);
            out.push_str(".\n\n");
        }
        out.push_str(match self.grade {
            G_PASS => INTRO_PASS,
            G_FAIL => INTRO_FAIL,
            G_NA => INTRO_NA,
            _ => INTRO_UNKNOWN,
        });
        out.push_str(SECTIONS);
        if let Some(c) = self.profile.comment {
            out.push_str(c);
            if self.profile.automated {
                out.push_str("\n\n");
                out.push_str(AUTOMATED_COMMENT);
            }
        } else if self.profile.automated {
            out.push_str(AUTOMATED_COMMENT);
        } else {
            out.push_str("none provided");
        }
        out.push_str("\n\n");
    }

    // ---- program output ------------------------------------------------------------------

    fn program_output(&mut self) -> (String, String) {
        let mut text = String::with_capacity(4096);
        let cmd;
        if self.cpanm {
            cmd = String::new();
            match self.grade {
                G_PASS | G_FAIL => {
                    self.cpanm_building(&mut text);
                    if self.grade == G_PASS && self.rng.chance(30) {
                        text.push_str("No tests defined for ");
                        text.push_str(&self.dist.module);
                        text.push_str(" extension.\n-> OK\n");
                    } else {
                        self.tap_run(&mut text, self.grade == G_FAIL);
                    }
                }
                G_NA => {
                    text.push_str(self.configure_line());
                    self.na_reason(&mut text);
                    text.push_str("-> N/A\n-> FAIL Configure failed for ");
                    self.push_cpanm_fail_tail(&mut text);
                }
                _ => {
                    if self.dist.xs {
                        self.cpanm_building_head(&mut text);
                        self.xs_build(&mut text, true);
                        text.push_str("-> FAIL Installing ");
                        text.push_str(&self.dist.module);
                        text.push_str(" failed. See ");
                        self.push_cpanm_log(&mut text);
                        text.push_str(" for details. Retry with --force to force install it.\n");
                    } else {
                        text.push_str(self.configure_line());
                        self.configure_error(&mut text);
                        text.push_str("-> FAIL Configure failed for ");
                        self.push_cpanm_fail_tail(&mut text);
                    }
                }
            }
            return (cmd, text);
        }
        match self.grade {
            G_PASS | G_FAIL => {
                cmd = self.test_command();
                self.tap_run(&mut text, self.grade == G_FAIL);
            }
            G_NA => {
                cmd = self.configure_command();
                self.configure_phase = true;
                self.no_prereqs = self.rng.chance(550);
                self.na_reason(&mut text);
            }
            _ => {
                let r = self.rng.below(100);
                if self.dist.xs && r < 75 {
                    cmd = match self.dist.tool {
                        BuildTool::MakeMaker => self.m.make_cmd.to_string(),
                        _ if self.m.windows => "Build".to_string(),
                        _ => "./Build".to_string(),
                    };
                    self.xs_build(&mut text, true);
                } else if self.dist.tool == BuildTool::MakeMaker && r < 85 {
                    cmd = self.test_command();
                    text.push_str("No tests defined for ");
                    text.push_str(&self.dist.module);
                    text.push_str(" extension.\n");
                } else {
                    cmd = self.configure_command();
                    self.configure_phase = true;
                    self.no_prereqs = self.rng.chance(500);
                    self.configure_error(&mut text);
                }
            }
        }
        (cmd, text)
    }

    fn test_command(&self) -> String {
        match self.dist.tool {
            BuildTool::MakeMaker => {
                let mut s = String::with_capacity(20);
                s.push_str(self.m.make_cmd);
                s.push_str(" test");
                s
            }
            _ if self.m.windows => "Build test".to_string(),
            _ => "./Build test".to_string(),
        }
    }

    fn configure_command(&self) -> String {
        let mut s = String::with_capacity(self.m.perl_path.len() + 12);
        s.push_str(&self.m.perl_path);
        s.push_str(match self.dist.tool {
            BuildTool::MakeMaker => " Makefile.PL",
            _ => " Build.PL",
        });
        s
    }

    fn configure_line(&self) -> &'static str {
        match self.dist.tool {
            BuildTool::MakeMaker => "Running Makefile.PL\n",
            _ => "Running Build.PL\n",
        }
    }

    fn push_cpanm_log(&mut self, out: &mut String) {
        out.push_str(&self.cpanm_work);
        out.push(self.m.dir_sep);
        out.push_str("build.log");
    }

    fn push_cpanm_fail_tail(&mut self, out: &mut String) {
        out.push_str(&self.dist.name);
        out.push('-');
        out.push_str(self.version);
        out.push_str(". See ");
        self.push_cpanm_log(out);
        out.push_str(" for details.\n");
    }

    fn cpanm_building_head(&mut self, out: &mut String) {
        out.push_str("Building and testing ");
        out.push_str(&self.dist.name);
        out.push('-');
        out.push_str(self.version);
        out.push('\n');
        if self.dist.tool != BuildTool::MakeMaker {
            out.push_str("Building ");
            out.push_str(&self.dist.name);
            out.push('\n');
        }
    }

    /// cpanm's build.log from "Building and testing" up to the test run.
    fn cpanm_building(&mut self, out: &mut String) {
        self.cpanm_building_head(out);
        if self.dist.tool == BuildTool::MakeMaker {
            for pm in self.module_files() {
                out.push_str("cp ");
                out.push_str(&pm);
                out.push_str(" blib/");
                out.push_str(&pm);
                out.push('\n');
            }
        }
        if self.dist.xs {
            self.xs_build(out, false);
        }
        if self.dist.tool == BuildTool::MakeMaker && self.rng.chance(500) {
            let n = 1 + self.rng.skewed(6);
            out.push_str("Manifying ");
            push_usize(out, n);
            out.push_str(if n == 1 {
                " pod document\n"
            } else {
                " pod documents\n"
            });
        }
    }

    /// `lib/...pm` files of the distribution (stable per dist).
    fn module_files(&self) -> Vec<String> {
        let mut r = Rng::new(self.dist.shape ^ 0x0D0D_11B5);
        let n = r.skewed(12);
        let mut files = Vec::with_capacity(n + 1);
        files.push(format!("lib/{}.pm", self.dist.path));
        for _ in 0..n {
            let f = format!("lib/{}/{}.pm", self.dist.path, r.pick(NS_MID));
            if !files.contains(&f) {
                files.push(f);
            }
        }
        files
    }

    fn expand(&mut self, template: &str, file: &str, out: &mut String) {
        let bytes = template.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'@'
                && i + 1 < bytes.len()
                && matches!(bytes[i + 1], b'F' | b'L' | b'P' | b'M')
            {
                out.push_str(&template[start..i]);
                match bytes[i + 1] {
                    b'F' => out.push_str(file),
                    b'L' => push_usize(out, 5 + self.rng.skewed(600)),
                    b'P' => out.push_str(&self.dist.module),
                    _ => {
                        let w = self.world.word(self.rng, METHODS);
                        out.push_str(w);
                    }
                }
                i += 2;
                start = i;
            } else {
                i += 1;
            }
        }
        out.push_str(&template[start..]);
    }

    fn lib_file(&self) -> String {
        let sep = self.m.dir_sep;
        let mut s = String::with_capacity(self.build_dir.len() + self.dist.path.len() + 16);
        s.push_str(&self.build_dir);
        s.push(sep);
        s.push_str("blib");
        s.push(sep);
        s.push_str("lib");
        s.push(sep);
        if sep == '/' {
            s.push_str(&self.dist.path);
        } else {
            s.push_str(&self.dist.path.replace('/', "\\"));
        }
        s.push_str(".pm");
        s
    }

    // ---- TAP -------------------------------------------------------------------------------

    fn test_files(&mut self) -> (Vec<TestFile>, bool) {
        let world = self.world;
        let mut r = Rng::new(self.dist.shape ^ 0x7E57_F11E);
        let numbered = r.chance(650);
        let n = self.dist.n_tests;
        let subdir = n > 10 && r.chance(300);
        let mut files: Vec<TestFile> = Vec::with_capacity(n + 3);
        let load = *r.pick(&[
            "t/00-load.t",
            "t/00-load.t",
            "t/00-compile.t",
            "t/load.t",
            "t/00_use.t",
            "t/basic.t",
        ]);
        files.push(TestFile {
            name: load.to_string(),
            planned: 1 + r.skewed(6),
            skip: None,
        });
        let mut used_words: u128 = 0;
        for i in 1..n {
            // Prefer a word not used yet (a few tries, then accept a repeat).
            let mut wi = world.zipf_index(&mut r, TEST_WORDS.len());
            for _ in 0..4 {
                if used_words & (1u128 << wi) == 0 {
                    break;
                }
                wi = world.zipf_index(&mut r, TEST_WORDS.len());
            }
            used_words |= 1u128 << wi;
            let w = TEST_WORDS[wi];
            let mut name = String::with_capacity(24);
            name.push_str("t/");
            if subdir && r.chance(400) {
                name.push_str(r.pick_str(&["unit/", "api/", "regression/", "integration/"]));
            }
            if numbered {
                push_two(&mut name, i as u32);
                name.push('-');
            }
            name.push_str(w);
            name.push_str(".t");
            if files.iter().any(|f| f.name == name) {
                continue;
            }
            let planned = 1 + r.skewed(40) + if r.chance(150) { r.below(300) } else { 0 };
            let skip = if r.chance(60) {
                Some(*r.pick(SKIP_REASONS))
            } else {
                None
            };
            files.push(TestFile {
                name,
                planned,
                skip,
            });
        }
        if r.chance(300) {
            files.push(TestFile {
                name: "t/author-pod-syntax.t".into(),
                planned: 1,
                skip: Some("these tests are for testing by the author"),
            });
        }
        if r.chance(200) {
            files.push(TestFile {
                name: "t/release-pod-coverage.t".into(),
                planned: 1,
                skip: Some("these tests are for release candidate testing"),
            });
        }
        if r.chance(150) {
            files.push(TestFile {
                name: "t/pod.t".into(),
                planned: 1,
                skip: Some("Test::Pod 1.22 required for testing POD"),
            });
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        (files, subdir)
    }

    fn push_name(out: &mut String, name: &str, width: usize) {
        out.push_str(name);
        out.push(' ');
        for _ in name.len()..width + 2 {
            out.push('.');
        }
        out.push(' ');
    }

    fn tap_run(&mut self, out: &mut String, fail: bool) {
        let (files, subdir) = self.test_files();
        if self.dist.tool == BuildTool::MakeMaker {
            out.push_str(&self.m.mm_test_cmd);
            if subdir {
                out.push_str(" t/*/*.t");
            }
            out.push('\n');
        }
        let width = files.iter().map(|f| f.name.len()).max().unwrap_or(8);
        if !fail {
            let mut tests = 0;
            for (i, f) in files.iter().enumerate() {
                Self::push_name(out, &f.name, width);
                if let Some(reason) = f.skip {
                    out.push_str("skipped: ");
                    out.push_str(reason);
                    out.push('\n');
                    continue;
                }
                if i == 0 && self.rng.chance(150) {
                    self.push_testing_diag(out);
                    Self::push_name(out, &f.name, width);
                } else if self.rng.chance(12) {
                    let w = *self.rng.pick(WARNINGS);
                    let file = self.lib_file();
                    self.expand(w, &file, out);
                    out.push('\n');
                    Self::push_name(out, &f.name, width);
                }
                out.push_str("ok\n");
                tests += f.planned;
            }
            out.push_str("All tests successful.\n");
            self.push_files_line(out, files.len(), tests);
            out.push_str("Result: PASS\n");
            return;
        }
        self.tap_fail(out, &files, width);
    }

    fn push_testing_diag(&mut self, out: &mut String) {
        out.push_str("# Testing ");
        out.push_str(&self.dist.module);
        out.push(' ');
        out.push_str(self.version.trim_end_matches("-TRIAL"));
        out.push_str(", Perl ");
        out.push_str(&self.m.perl_num);
        out.push_str(", ");
        out.push_str(&self.m.perl_path);
        out.push('\n');
    }

    fn push_files_line(&mut self, out: &mut String, files: usize, tests: usize) {
        let usr = 2 + self.rng.below(9) as u64;
        let sys = self.rng.below(4) as u64;
        let cusr = (files * self.rng.range(3, 24)) as u64 + (tests / 6) as u64;
        let csys = cusr / 6 + self.rng.below(4) as u64;
        let total = usr + sys + cusr + csys;
        out.push_str("Files=");
        push_usize(out, files);
        out.push_str(", Tests=");
        push_usize(out, tests);
        out.push_str(", ");
        push_right(out, &num((total / 100) as usize + self.rng.below(2)), 2);
        out.push_str(" wallclock secs (");
        if self.m.windows {
            push_centis(out, usr);
            out.push_str(" usr + ");
            push_centis(out, sys);
            out.push_str(" sys = ");
            push_centis(out, usr + sys);
            out.push_str(" CPU)\n");
        } else {
            push_centis(out, usr);
            out.push_str(" usr ");
            push_centis(out, sys);
            out.push_str(" sys + ");
            push_centis(out, cusr);
            out.push_str(" cusr ");
            push_centis(out, csys);
            out.push_str(" csys = ");
            push_centis(out, total);
            out.push_str(" CPU)\n");
        }
    }

    fn dubious(out: &mut String, exit: usize, wstat: usize) {
        out.push_str("Dubious, test returned ");
        push_usize(out, exit);
        out.push_str(" (wstat ");
        push_usize(out, wstat);
        out.push_str(", 0x");
        push_hex(out, wstat as u64, 1);
        out.push_str(")\n");
    }

    fn tap_fail(&mut self, out: &mut String, files: &[TestFile], width: usize) {
        let candidates: Vec<usize> = (0..files.len())
            .filter(|&i| files[i].skip.is_none())
            .collect();
        let candidates = if candidates.is_empty() {
            vec![0]
        } else {
            candidates
        };
        let want = match self.rng.below(100) {
            0..=71 => 1,
            72..=89 => 2,
            _ => self.rng.range(3, 5),
        }
        .min(candidates.len());
        let mut failing: Vec<usize> = Vec::with_capacity(want);
        while failing.len() < want {
            let c = candidates[self.rng.below(candidates.len())];
            if !failing.contains(&c) {
                failing.push(c);
            }
        }
        let long_tail = self.rng.chance(14);
        let mut results: Vec<FileResult> = Vec::with_capacity(want);
        let mut total_tests = 0;
        for (i, f) in files.iter().enumerate() {
            if !failing.contains(&i) {
                Self::push_name(out, &f.name, width);
                if let Some(reason) = f.skip {
                    out.push_str("skipped: ");
                    out.push_str(reason);
                    out.push('\n');
                } else {
                    out.push_str("ok\n");
                    total_tests += f.planned;
                }
                continue;
            }
            let big = long_tail && results.is_empty();
            let kind = if big { 0 } else { self.rng.below(100) };
            let result = if kind < 58 {
                self.fail_assert(out, f, width, big)
            } else if kind < 72 {
                if i == 0 && self.rng.chance(250) {
                    self.fail_bailout(out, f, width);
                    return;
                }
                self.fail_cant_locate(out, f, width)
            } else if kind < 86 || (kind < 92 && !self.dist.xs) {
                self.fail_died(out, f, width)
            } else if kind < 92 {
                self.fail_segv(out, f, width)
            } else {
                self.fail_bad_plan(out, f, width)
            };
            total_tests += result.ran;
            results.push(result);
        }
        out.push_str("\nTest Summary Report\n-------------------\n");
        let name_w = results.iter().map(|r| r.name.len()).max().unwrap_or(0);
        let mut failed_subtests = 0;
        for r in &results {
            push_padded(out, &r.name, name_w);
            out.push_str(" (Wstat: ");
            push_usize(out, r.wstat);
            if self.m.new_wstat {
                if r.signal {
                    out.push_str(if r.wstat & 0x80 != 0 {
                        " (Signal: SEGV, dumped core)"
                    } else {
                        " (Signal: SEGV)"
                    });
                } else {
                    out.push_str(" (exited ");
                    push_usize(out, r.exit);
                    out.push(')');
                }
            }
            out.push_str(" Tests: ");
            push_usize(out, r.ran);
            out.push_str(" Failed: ");
            push_usize(out, r.failed.len());
            out.push_str(")\n");
            if r.failed.len() == 1 {
                out.push_str("  Failed test:  ");
                push_usize(out, r.failed[0]);
                out.push('\n');
            } else if r.failed.len() > 1 {
                out.push_str("  Failed tests:  ");
                for (j, line) in balanced_ranges(&r.failed, 40).iter().enumerate() {
                    if j > 0 {
                        out.push_str("\n                ");
                    }
                    out.push_str(line);
                }
                out.push('\n');
            }
            if r.exit != 0 {
                out.push_str("  Non-zero exit status: ");
                push_usize(out, r.exit);
                out.push('\n');
            }
            if r.signal {
                out.push_str("  Non-zero wait status: ");
                push_usize(out, r.wstat);
                out.push('\n');
            }
            if let Some(p) = &r.parse_error {
                out.push_str("  Parse errors: ");
                out.push_str(p);
                out.push('\n');
            }
            failed_subtests += r.failed.len() + r.unrun;
        }
        self.push_files_line(out, files.len(), total_tests);
        out.push_str("Result: FAIL\n");
        if self.cpanm {
            return;
        }
        out.push_str("Failed ");
        push_usize(out, results.len());
        out.push('/');
        push_usize(out, files.len());
        out.push_str(" test programs. ");
        push_usize(out, failed_subtests);
        out.push('/');
        push_usize(out, total_tests.max(failed_subtests));
        out.push_str(" subtests failed.\n");
        if self.dist.tool == BuildTool::MakeMaker {
            let code = results
                .last()
                .map(|r| if r.exit == 0 { 255 } else { r.exit })
                .unwrap_or(1);
            self.push_make_error(
                out,
                "test_dynamic",
                code,
                700 + (self.dist.shape % 500) as usize,
            );
        }
    }

    fn push_make_error(&self, out: &mut String, target: &str, code: usize, line: usize) {
        match self.m.make {
            MakeFlavor::Gnu | MakeFlavor::Gmake => {
                out.push_str(if self.m.make == MakeFlavor::Gmake {
                    "gmake: *** [Makefile:"
                } else {
                    "make: *** [Makefile:"
                });
                push_usize(out, line);
                out.push_str(": ");
                out.push_str(target);
                out.push_str("] Error ");
                push_usize(out, code);
                out.push('\n');
            }
            MakeFlavor::GnuOld => {
                out.push_str("make: *** [");
                out.push_str(target);
                out.push_str("] Error ");
                push_usize(out, code);
                out.push('\n');
            }
            MakeFlavor::Bsd => {
                out.push_str("*** Error code ");
                push_usize(out, code);
                out.push_str("\n\nStop.\nmake: stopped in ");
                out.push_str(&self.build_dir);
                out.push('\n');
            }
        }
    }

    /// Failing assertions with Test::More / Test2 diagnostics.
    fn fail_assert(
        &mut self,
        out: &mut String,
        f: &TestFile,
        width: usize,
        big: bool,
    ) -> FileResult {
        let nfail = if big {
            self.rng.range(120, 1400)
        } else if self.rng.chance(250) {
            self.rng.range(4, 48)
        } else {
            1 + self.rng.skewed(8)
        };
        let planned = f.planned.max(nfail + self.rng.range(1, 12));
        let mut failed: Vec<usize> = Vec::with_capacity(nfail);
        if nfail * 2 > planned {
            let mut all: Vec<usize> = (1..=planned).collect();
            self.rng.shuffle(&mut all);
            failed.extend_from_slice(&all[..nfail]);
        } else {
            while failed.len() < nfail {
                let t = 1 + self.rng.below(planned);
                if !failed.contains(&t) {
                    failed.push(t);
                }
            }
        }
        failed.sort_unstable();
        let sub = if self.rng.chance(70) {
            6
        } else {
            self.rng.below(6)
        };
        let base_line = 8 + self.rng.skewed(300);
        let fixed_name = if big {
            Some(self.world.word(self.rng, TEST_NAMES))
        } else {
            None
        };
        match self.form {
            1 => {
                Self::push_name(out, &f.name, width);
                push_usize(out, failed[0] - 1);
                out.push('/');
                push_usize(out, planned);
                out.push(' ');
            }
            2 => {
                Self::push_name(out, &f.name, width);
                out.push('\n');
            }
            _ => {}
        }
        for (j, &t) in failed.iter().enumerate() {
            if self.form != 2 || j > 0 {
                out.push('\n');
            }
            let mut tn = String::with_capacity(40);
            let line = if let Some(n) = fixed_name {
                tn.push_str(n);
                tn.push(' ');
                push_usize(&mut tn, t);
                base_line + (t % 3)
            } else {
                tn.push_str(self.world.word(self.rng, TEST_NAMES));
                base_line + self.rng.skewed(80)
            };
            let this_sub = if big || self.rng.chance(700) {
                sub
            } else {
                self.rng.below(7)
            };
            self.push_assert_diag(out, &f.name, &tn, line, this_sub);
        }
        let k = failed.len();
        out.push_str("# Looks like you failed ");
        push_usize(out, k);
        out.push_str(if k == 1 { " test of " } else { " tests of " });
        push_usize(out, planned);
        out.push_str(".\n");
        Self::push_name(out, &f.name, width);
        if self.form == 0 {
            out.push('\n');
        }
        let exit = k.min(254);
        Self::dubious(out, exit, exit * 256);
        out.push_str("Failed ");
        push_usize(out, k);
        out.push('/');
        push_usize(out, planned);
        out.push_str(" subtests \n");
        FileResult {
            name: f.name.clone(),
            ran: planned,
            failed,
            exit,
            wstat: exit * 256,
            signal: false,
            parse_error: None,
            unrun: 0,
        }
    }

    fn push_assert_diag(
        &mut self,
        out: &mut String,
        file: &str,
        name: &str,
        line: usize,
        sub: usize,
    ) {
        if sub == 6 {
            // Test2::V0 table.
            out.push_str("# Failed test '");
            out.push_str(name);
            out.push_str("'\n# at ");
            out.push_str(file);
            out.push_str(" line ");
            push_usize(out, line);
            out.push_str(".\n");
            let (got, check) = self.value_pair();
            let got = got.trim_matches('\'').to_string();
            let check = check.trim_matches('\'').to_string();
            let path = self.deep_path();
            let w = [
                path.chars().count().max(4),
                got.chars().count().max(3),
                2,
                check.chars().count().max(5),
            ];
            let rule = |out: &mut String| {
                out.push_str("# +");
                for c in w {
                    for _ in 0..c + 2 {
                        out.push('-');
                    }
                    out.push('+');
                }
                out.push('\n');
            };
            rule(out);
            out.push_str("# | ");
            for (i, h) in ["PATH", "GOT", "OP", "CHECK"].iter().enumerate() {
                push_padded(out, h, w[i]);
                out.push_str(" | ");
            }
            out.pop();
            out.push('\n');
            rule(out);
            out.push_str("# | ");
            for (i, v) in [path.as_str(), got.as_str(), "eq", check.as_str()]
                .iter()
                .enumerate()
            {
                push_padded(out, v, w[i]);
                out.push_str(" | ");
            }
            out.pop();
            out.push('\n');
            rule(out);
            return;
        }
        out.push_str("#   Failed test '");
        out.push_str(name);
        out.push_str("'\n#   at ");
        out.push_str(file);
        out.push_str(" line ");
        push_usize(out, line);
        out.push_str(".\n");
        match sub {
            0 if self.rng.chance(250) => {
                // Multi-line strings: Test::More continues them with "# ".
                let (g, e) = *self.rng.pick(MULTILINE_PAIRS);
                out.push_str("#          got: '");
                push_hash_continued(out, g);
                out.push_str("'\n#     expected: '");
                push_hash_continued(out, e);
                out.push_str("'\n");
            }
            0 => {
                let (g, e) = self.value_pair();
                out.push_str("#          got: ");
                out.push_str(&g);
                out.push_str("\n#     expected: ");
                out.push_str(&e);
                out.push('\n');
            }
            1 => {
                let (g, e) = self.value_pair();
                let path = self.deep_path();
                out.push_str("#     Structures begin differing at:\n#          $got");
                out.push_str(&path);
                out.push_str(" = ");
                out.push_str(&g);
                out.push_str("\n#     $expected");
                out.push_str(&path);
                out.push_str(" = ");
                out.push_str(&e);
                out.push('\n');
            }
            2 => {
                let (g, _) = self.value_pair();
                const PATTERNS: &[&str] = &[
                    "^\\d+$",
                    "Connection refused",
                    "at .* line \\d+",
                    "(?i:error)",
                    "^OK",
                    "\\A\\s*\\z",
                    "Invalid",
                    "\\bfoo\\b",
                    "^[A-Z]{3}$",
                    "expected",
                ];
                out.push_str("#                   ");
                out.push_str(&g);
                out.push_str("\n#     doesn't match '");
                out.push_str(if self.m.minor < 14 {
                    "(?-xism:"
                } else {
                    "(?^:"
                });
                out.push_str(self.rng.pick_str(PATTERNS));
                out.push_str(")'\n");
            }
            3 => {
                out.push_str("# expecting: ");
                out.push_str(&self.dist.module);
                out.push_str("::X::");
                out.push_str(
                    self.rng
                        .pick_str(&["Invalid", "NotFound", "Timeout", "Usage", "Parse", "IO"]),
                );
                out.push_str("\n# found: normal exit\n");
            }
            4 => {
                out.push_str("#     The object isn't a '");
                out.push_str(&self.dist.module);
                out.push_str("' it's a '");
                out.push_str(self.rng.pick_str(&[
                    "HASH",
                    "ARRAY",
                    "CODE",
                    "Moose::Meta::Class",
                    "Type::Tiny",
                ]));
                out.push_str("'\n");
            }
            _ => {
                let n = self.rng.skewed(2000);
                let g = quote_num(n);
                let e = quote_num(n + 1 + self.rng.skewed(50));
                out.push_str("#     ");
                out.push_str(&g);
                out.push_str("\n#         ");
                out.push_str(self.rng.pick_str(&["<", ">", "<=", ">=", "==", "eq"]));
                out.push_str("\n#     ");
                out.push_str(&e);
                out.push('\n');
            }
        }
    }

    fn deep_path(&mut self) -> String {
        const KEYS: &[&str] = &[
            "name", "id", "items", "value", "type", "data", "config", "options", "meta",
            "children", "status", "error", "result", "args", "headers", "version",
        ];
        let mut s = String::with_capacity(24);
        for i in 0..1 + self.rng.skewed(3) {
            if i == 0 {
                s.push_str("->");
            }
            if self.rng.chance(300) {
                s.push('[');
                push_usize(&mut s, self.rng.skewed(10));
                s.push(']');
            } else {
                s.push('{');
                s.push_str(self.world.word(self.rng, KEYS));
                s.push('}');
            }
        }
        s
    }

    fn hex_addr(&mut self, out: &mut String) {
        out.push_str("0x55");
        push_hex(out, self.rng.next_u64() & 0xff_ffff_ffff, 10);
    }

    /// A (got, expected) pair, already formatted as Test::More shows them.
    fn value_pair(&mut self) -> (String, String) {
        let quote = |s: &str| {
            let mut q = String::with_capacity(s.len() + 2);
            q.push('\'');
            q.push_str(s);
            q.push('\'');
            q
        };
        match self.rng.below(100) {
            0..=24 => {
                let n = self.rng.skewed(120);
                let e = match self.rng.below(3) {
                    0 => n + 1,
                    1 => n * 2 + 1,
                    _ => n.saturating_sub(1),
                };
                (quote(&num(n)), quote(&num(e)))
            }
            25..=44 => {
                let g = self.world.word(self.rng, VALUE_WORDS);
                let e = self.world.word(self.rng, VALUE_WORDS);
                let e = if e == g {
                    format!("{g} ")
                } else {
                    e.to_string()
                };
                (quote(g), quote(&e))
            }
            45..=52 => {
                let w = self.world.word(self.rng, VALUE_WORDS);
                if self.rng.chance(500) {
                    ("undef".into(), quote(w))
                } else {
                    (quote(w), "undef".into())
                }
            }
            53..=60 => {
                let (g, e) = *self.rng.pick(&[
                    ("0.30000000000000004", "0.3"),
                    ("3.14159265358979", "3.14159"),
                    ("1e+20", "100000000000000000000"),
                    ("-0", "0"),
                    ("NaN", "0"),
                    ("Inf", "9**9**9"),
                    ("2.5", "3"),
                ]);
                (quote(g), quote(e))
            }
            61..=68 => {
                let (g, e) = *self.rng.pick(&[
                    ("2024-03-10T02:30:00", "2024-03-10T03:30:00"),
                    ("1970-01-01", "1969-12-31"),
                    ("2025-01-01 00:00:00 +0000", "2025-01-01 01:00:00 +0100"),
                    ("Sun Mar 31 02:00:00 2024", "Sun Mar 31 03:00:00 2024"),
                    ("2038-01-19T03:14:08Z", "1901-12-13T20:45:52Z"),
                ]);
                (quote(g), quote(e))
            }
            69..=76 => {
                let mut g = String::with_capacity(40);
                g.push('\'');
                if self.rng.chance(500) {
                    g.push_str(&self.dist.module);
                    g.push('=');
                }
                g.push_str(self.rng.pick_str(&["HASH(", "ARRAY(", "CODE(", "SCALAR("]));
                self.hex_addr(&mut g);
                g.push_str(")'");
                let module = self.dist.module.as_str();
                let e = quote(self.rng.pick_str(&["ARRAY", "HASH", module, "1"]));
                (g, e)
            }
            77..=84 => {
                let (g, e) = *self.rng.pick(&[
                    ("cafÃ©", "café"),
                    ("naÃ¯ve", "naïve"),
                    ("caf\\x{e9}", "café"),
                    ("???", "日本語"),
                    ("Ã¼ber", "über"),
                    ("\\x{fffd}", "é"),
                ]);
                (quote(g), quote(e))
            }
            85..=92 => {
                let (g, e) = *self.rng.pick(&[
                    ("1.23", "1.230"),
                    ("v1.2.3", "1.002003"),
                    ("0.01_01", "0.0101"),
                    ("2.0", "2"),
                    ("1.10", "1.1"),
                ]);
                (quote(g), quote(e))
            }
            _ => {
                let mut g = String::with_capacity(96);
                g.push('\'');
                let t = *self.rng.pick(DIE_MESSAGES);
                let file = self.lib_file();
                self.expand(t, &file, &mut g);
                g.push('\'');
                (g, "''".into())
            }
        }
    }

    /// The `@INC contains:` list; `with_blib` once the distribution has been built.
    fn push_inc_contains(&self, out: &mut String, with_blib: bool) {
        let sep = self.m.dir_sep;
        let mut first = true;
        let mut dirs: Vec<&str> = Vec::with_capacity(self.blib.len() + self.m.inc.len());
        let own = if with_blib {
            vec![
                format!("{}{sep}blib{sep}lib", self.build_dir),
                format!("{}{sep}blib{sep}arch", self.build_dir),
            ]
        } else {
            Vec::new()
        };
        dirs.extend(own.iter().map(String::as_str));
        dirs.extend(self.blib.iter().map(String::as_str));
        if let Some(ll) = &self.m.local_lib {
            dirs.push(ll);
        }
        dirs.extend(self.m.inc.iter().map(String::as_str));
        for d in dirs {
            if !first {
                out.push(' ');
            }
            first = false;
            out.push_str(d);
        }
        if self.m.minor < 26
            || !self.cpanm && self.m.env.iter().any(|(k, _)| *k == "PERL_USE_UNSAFE_INC")
        {
            out.push_str(" .");
        }
    }

    /// A module that is not installed: a common CPAN module or a popular dist from the pool.
    fn missing_module(&mut self) -> &'static str {
        if self.rng.chance(550) {
            let (name, _) =
                COMMON_MODULES[8 + self.world.zipf_index(self.rng, COMMON_MODULES.len() - 8)];
            name
        } else {
            let d = &self.world.dists[self.world.dist_zipf.sample(self.rng)];
            d.module.as_str()
        }
    }

    fn push_cant_locate(
        &mut self,
        out: &mut String,
        module: &str,
        at: &str,
        line: usize,
        built: bool,
    ) {
        out.push_str("Can't locate ");
        out.push_str(&module.replace("::", "/"));
        out.push_str(".pm in @INC (");
        if self.m.minor >= 18 {
            out.push_str("you may need to install the ");
            out.push_str(module);
            out.push_str(" module) (");
        }
        out.push_str("@INC contains: ");
        self.push_inc_contains(out, built);
        out.push_str(") at ");
        out.push_str(at);
        out.push_str(" line ");
        push_usize(out, line);
        out.push_str(".\n");
    }

    fn fail_cant_locate(&mut self, out: &mut String, f: &TestFile, width: usize) -> FileResult {
        let module = self.missing_module();
        if self.rng.chance(500) {
            self.missing = Some(module);
        }
        let tline = 3 + self.rng.below(12);
        if self.rng.chance(450) {
            let name = f.name.clone();
            self.push_cant_locate(out, module, &name, tline, true);
        } else {
            let lib = self.lib_file();
            let lline = 5 + self.rng.below(20);
            self.push_cant_locate(out, module, &lib, lline, true);
            out.push_str("BEGIN failed--compilation aborted at ");
            out.push_str(&lib);
            out.push_str(" line ");
            push_usize(out, lline);
            out.push_str(".\nCompilation failed in require at ");
            out.push_str(&f.name);
            out.push_str(" line ");
            push_usize(out, tline);
            out.push_str(".\n");
        }
        out.push_str("BEGIN failed--compilation aborted at ");
        out.push_str(&f.name);
        out.push_str(" line ");
        push_usize(out, tline);
        out.push_str(".\n");
        Self::push_name(out, &f.name, width);
        if self.form == 0 {
            out.push('\n');
        }
        Self::dubious(out, 2, 512);
        out.push_str("No subtests run \n");
        FileResult {
            name: f.name.clone(),
            ran: 0,
            failed: Vec::new(),
            exit: 2,
            wstat: 512,
            signal: false,
            parse_error: Some("No plan found in TAP output".into()),
            unrun: 0,
        }
    }

    fn fail_bailout(&mut self, out: &mut String, f: &TestFile, width: usize) {
        let module = self.missing_module();
        Self::push_name(out, &f.name, width);
        out.push_str("1/");
        push_usize(out, f.planned);
        out.push_str(" \n#   Failed test 'use ");
        out.push_str(&self.dist.module);
        out.push_str(";'\n#   at ");
        out.push_str(&f.name);
        out.push_str(" line 10.\n#     Tried to use '");
        out.push_str(&self.dist.module);
        out.push_str("'.\n#     Error:  ");
        let lib = self.lib_file();
        let mut msg = String::with_capacity(1024);
        self.push_cant_locate(&mut msg, module, &lib, 9, true);
        out.push_str(msg.trim_end());
        out.push_str("\n# BEGIN failed--compilation aborted at ");
        out.push_str(&lib);
        out.push_str(" line 9.\n# Compilation failed in require at ");
        out.push_str(&f.name);
        out.push_str(" line 10.\n# BEGIN failed--compilation aborted at ");
        out.push_str(&f.name);
        out.push_str(" line 10.\nBailout called.  Further testing stopped:  Couldn't load ");
        out.push_str(&self.dist.module);
        out.push_str("\nFAILED--Further testing stopped: Couldn't load ");
        out.push_str(&self.dist.module);
        out.push('\n');
        if !self.cpanm && self.dist.tool == BuildTool::MakeMaker {
            self.push_make_error(
                out,
                "test_dynamic",
                255,
                700 + (self.dist.shape % 500) as usize,
            );
        }
    }

    fn fail_died(&mut self, out: &mut String, f: &TestFile, width: usize) -> FileResult {
        let planned = f.planned.max(2);
        let ran = self.rng.below(planned);
        let no_plan = ran > 0 && self.rng.chance(250);
        if ran > 0 && self.form == 1 {
            Self::push_name(out, &f.name, width);
            push_usize(out, ran);
            out.push('/');
            if no_plan {
                out.push('?');
            } else {
                push_usize(out, planned);
            }
            out.push(' ');
        }
        let t = *self.rng.pick(DIE_MESSAGES);
        let file = if self.rng.chance(500) {
            f.name.clone()
        } else {
            self.lib_file()
        };
        self.expand(t, &file, out);
        out.push('\n');
        if ran == 0 {
            out.push_str(
                "# Looks like your test exited with 255 before it could output anything.\n",
            );
        } else {
            out.push_str("# Looks like your test exited with 255 just after ");
            push_usize(out, ran);
            out.push_str(".\n");
        }
        Self::push_name(out, &f.name, width);
        if self.form == 0 {
            out.push('\n');
        }
        Self::dubious(out, 255, 65280);
        if ran == 0 {
            out.push_str("No subtests run \n");
        } else if no_plan {
            out.push_str("All ");
            push_usize(out, ran);
            out.push_str(" subtests passed \n");
        } else {
            out.push_str("Failed ");
            push_usize(out, planned - ran);
            out.push('/');
            push_usize(out, planned);
            out.push_str(" subtests \n");
        }
        let parse_error = if ran == 0 || no_plan {
            "No plan found in TAP output".to_string()
        } else {
            format!("Bad plan.  You planned {planned} tests but ran {ran}.")
        };
        FileResult {
            name: f.name.clone(),
            ran,
            failed: Vec::new(),
            exit: 255,
            wstat: 65280,
            signal: false,
            parse_error: Some(parse_error),
            unrun: if no_plan { 0 } else { planned - ran },
        }
    }

    fn fail_segv(&mut self, out: &mut String, f: &TestFile, width: usize) -> FileResult {
        let planned = f.planned.max(2);
        let ran = self.rng.below(planned);
        if ran > 0 && self.form == 1 {
            Self::push_name(out, &f.name, width);
            push_usize(out, ran);
            out.push('/');
            push_usize(out, planned);
            out.push(' ');
        }
        let core = self.rng.chance(500);
        if core && self.rng.chance(500) {
            out.push_str("Segmentation fault (core dumped)\n");
        }
        let wstat = if core { 139 } else { 11 };
        Self::push_name(out, &f.name, width);
        if self.form == 0 {
            out.push('\n');
        }
        Self::dubious(out, 0, wstat);
        out.push_str("Failed ");
        push_usize(out, planned - ran);
        out.push('/');
        push_usize(out, planned);
        out.push_str(" subtests \n");
        FileResult {
            name: f.name.clone(),
            ran,
            failed: Vec::new(),
            exit: 0,
            wstat,
            signal: true,
            parse_error: Some(format!(
                "Bad plan.  You planned {planned} tests but ran {ran}."
            )),
            unrun: planned - ran,
        }
    }

    fn fail_bad_plan(&mut self, out: &mut String, f: &TestFile, width: usize) -> FileResult {
        let planned = f.planned.max(3);
        let ran = planned - 1 - self.rng.below(planned.min(4) - 1);
        out.push_str("# Looks like you planned ");
        push_usize(out, planned);
        out.push_str(" tests but ran ");
        push_usize(out, ran);
        out.push_str(".\n");
        Self::push_name(out, &f.name, width);
        if self.form == 0 {
            out.push('\n');
        }
        Self::dubious(out, 255, 65280);
        out.push_str("Failed ");
        push_usize(out, planned - ran);
        out.push('/');
        push_usize(out, planned);
        out.push_str(" subtests \n");
        FileResult {
            name: f.name.clone(),
            ran,
            failed: Vec::new(),
            exit: 255,
            wstat: 65280,
            signal: false,
            parse_error: Some(format!(
                "Bad plan.  You planned {planned} tests but ran {ran}."
            )),
            unrun: planned - ran,
        }
    }

    // ---- configure and build -----------------------------------------------------------------

    fn na_reason(&mut self, out: &mut String) {
        if self.dist.tool == BuildTool::MakeMaker && self.rng.chance(450) {
            out.push_str("Checking if your kit is complete...\nLooks good\n");
        }
        if self.rng.chance(200) {
            let module = self.missing_module();
            self.missing = Some(module);
            out.push_str("Warning: prerequisite ");
            out.push_str(module);
            out.push_str(" 0 not found.\n");
        }
        if self.dist.win32_only && !self.m.windows {
            out.push_str(if self.rng.chance(500) {
                "OS unsupported\n"
            } else {
                "OS unsupported: this distribution only works on MSWin32\n"
            });
            return;
        }
        if self.m.minor < 16 && self.rng.chance(600) {
            let need = self.m.minor + 2 + self.rng.below(6) as u32;
            let at = if self.dist.tool == BuildTool::MakeMaker {
                "Makefile.PL"
            } else {
                "Build.PL"
            };
            let line = 1 + self.rng.below(8);
            out.push_str("Perl v5.");
            push_u64(out, u64::from(need));
            out.push_str(".0 required--this is only v5.");
            push_u64(out, u64::from(self.m.minor));
            out.push('.');
            push_u64(out, u64::from(self.m.sub));
            out.push_str(", stopped at ");
            out.push_str(at);
            out.push_str(" line ");
            push_usize(out, line);
            out.push_str(".\nBEGIN failed--compilation aborted at ");
            out.push_str(at);
            out.push_str(" line ");
            push_usize(out, line);
            out.push_str(".\n");
            return;
        }
        let r = self.rng.below(100);
        if r < 30 || (self.dist.xs && r < 60) {
            let (header, lib, pkg) = *self.rng.pick(C_LIBS);
            if self.rng.chance(500) {
                out.push_str("Can't link/include C library '");
                out.push_str(header);
                out.push_str("', '");
                out.push_str(lib);
                out.push_str("', aborting.\n");
            } else {
                out.push_str("Package lib");
                out.push_str(lib);
                out.push_str(" was not found in the pkg-config search path.\nPerhaps you should add the directory containing `lib");
                out.push_str(lib);
                out.push_str(".pc'\nto the PKG_CONFIG_PATH environment variable\nNo package 'lib");
                out.push_str(lib);
                out.push_str("' found\n*** Could not find lib");
                out.push_str(lib);
                out.push_str(". Please install the development files (e.g. ");
                out.push_str(pkg);
                out.push_str(").\nOS unsupported\n");
            }
            return;
        }
        if self.m.windows && r < 80 {
            out.push_str(self.rng.pick_str(&[
                "OS unsupported\n",
                "No support for OS\n",
                "OS unsupported: this module does not work on MSWin32\n",
                "This module requires fork(), which is not supported on MSWin32.\nOS unsupported\n",
            ]));
            return;
        }
        const REASONS: &[&str] = &[
            "OS unsupported\n",
            "No support for OS\n",
            "OS unsupported: this distribution needs a POSIX system with /proc\n",
            "This module requires a perl built with 64-bit integers (use64bitint).\nOS unsupported\n",
            "This perl was not built with ithreads support; this distribution needs threads.\nOS unsupported\n",
            "OS unsupported: this distribution needs VMS\n",
            "Only Linux and FreeBSD are supported.\nOS unsupported\n",
        ];
        out.push_str(self.world.word(self.rng, REASONS));
    }

    fn configure_error(&mut self, out: &mut String) {
        let at = if self.dist.tool == BuildTool::MakeMaker {
            "Makefile.PL"
        } else {
            "Build.PL"
        };
        let module = match self.rng.below(4) {
            0 => "inc::Module::Install",
            1 if self.dist.tool == BuildTool::ModuleBuildTiny => "Module::Build::Tiny",
            1 => "ExtUtils::PkgConfig",
            2 => "Alien::Base::Wrapper",
            _ => self.missing_module(),
        };
        let line = 1 + self.rng.below(12);
        self.push_cant_locate(out, module, at, line, false);
        out.push_str("BEGIN failed--compilation aborted at ");
        out.push_str(at);
        out.push_str(" line ");
        push_usize(out, line);
        out.push_str(".\n");
    }

    /// XS compile (and link) output; with `fail`, it stops at a compiler or linker error.
    fn xs_build(&mut self, out: &mut String, fail: bool) {
        let m = self.m;
        let leaf = &self.dist.leaf;
        let path = &self.dist.path;
        let v = self.version.trim_end_matches("-TRIAL");
        let mm = self.dist.tool == BuildTool::MakeMaker;
        if fail && mm && !self.cpanm {
            for pm in self.module_files() {
                out.push_str("cp ");
                out.push_str(&pm);
                out.push_str(" blib/");
                out.push_str(&pm);
                out.push('\n');
            }
        }
        if mm {
            out.push_str("Running Mkbootstrap for ");
            out.push_str(leaf);
            out.push_str(" ()\nchmod 644 \"");
            out.push_str(leaf);
            out.push_str(".bs\"\n\"");
            out.push_str(&m.perl_path);
            out.push_str("\" -MExtUtils::Command::MM -e 'cp_nonempty' -- ");
            out.push_str(leaf);
            out.push_str(".bs blib/arch/auto/");
            out.push_str(path);
            out.push('/');
            out.push_str(leaf);
            out.push_str(".bs 644\n");
            out.push_str(&m.xsubpp);
            out.push(' ');
            out.push_str(leaf);
            out.push_str(".xs > ");
            out.push_str(leaf);
            out.push_str(".xsc\nmv ");
            out.push_str(leaf);
            out.push_str(".xsc ");
            out.push_str(leaf);
            out.push_str(".c\n");
        }
        out.push_str(&m.xs_cc);
        out.push_str("-DVERSION=\\\"");
        out.push_str(v);
        out.push_str("\\\" -DXS_VERSION=\\\"");
        out.push_str(v);
        out.push_str("\\\" ");
        out.push_str(&m.xs_core);
        out.push_str("   ");
        if !mm {
            out.push_str("lib/");
            out.push_str(path);
        } else {
            out.push_str(leaf);
        }
        out.push_str(".c\n");
        if self.rng.chance(250) {
            self.compiler_warning(out);
        }
        if fail && self.rng.chance(850) {
            self.compiler_error(out);
            if mm {
                let mut target = String::with_capacity(leaf.len() + 2);
                target.push_str(leaf);
                target.push_str(".o");
                self.push_make_error(out, &target, 1, 300 + (self.dist.shape % 120) as usize);
            } else {
                out.push_str("error building ");
                out.push_str(if mm { leaf } else { "lib/" });
                if !mm {
                    out.push_str(path);
                }
                out.push_str(".o from 'lib/");
                out.push_str(path);
                out.push_str(".c' at ");
                out.push_str(if m.windows {
                    "C:/Strawberry/perl/lib/ExtUtils/CBuilder/Base.pm"
                } else {
                    "/usr/share/perl5/ExtUtils/CBuilder/Base.pm"
                });
                out.push_str(" line 185.\n");
            }
            return;
        }
        out.push_str("rm -f blib/arch/auto/");
        out.push_str(path);
        out.push('/');
        out.push_str(leaf);
        out.push('.');
        out.push_str(m.dlext);
        out.push('\n');
        out.push_str(&m.xs_ld);
        out.push_str("  ");
        out.push_str(leaf);
        out.push_str(".o  -o blib/arch/auto/");
        out.push_str(path);
        out.push('/');
        out.push_str(leaf);
        out.push('.');
        out.push_str(m.dlext);
        out.push_str("  \\\n      \\\n  \n");
        if fail {
            let (_, lib, _) = *self.rng.pick(C_LIBS);
            if m.clang {
                out.push_str("ld: error: unable to find library -l");
                out.push_str(lib);
                out.push_str("\ncc: error: linker command failed with exit code 1 (use -v to see invocation)\n");
            } else {
                out.push_str("/usr/bin/ld: cannot find -l");
                out.push_str(lib);
                out.push_str(
                    ": No such file or directory\ncollect2: error: ld returned 1 exit status\n",
                );
            }
            let mut target = String::with_capacity(64);
            target.push_str("blib/arch/auto/");
            target.push_str(path);
            target.push('/');
            target.push_str(leaf);
            target.push('.');
            target.push_str(m.dlext);
            self.push_make_error(out, &target, 1, 330 + (self.dist.shape % 120) as usize);
            return;
        }
        out.push_str("chmod 755 blib/arch/auto/");
        out.push_str(path);
        out.push('/');
        out.push_str(leaf);
        out.push('.');
        out.push_str(m.dlext);
        out.push('\n');
    }

    fn xs_function(&mut self, out: &mut String) {
        out.push_str("XS_");
        out.push_str(&self.dist.module.replace("::", "__"));
        out.push('_');
        let w = self.world.word(self.rng, METHODS);
        out.push_str(w);
    }

    /// The XS source file as the compiler names it.
    fn xs_source(&self) -> String {
        if self.dist.tool == BuildTool::MakeMaker {
            format!("{}.xs", self.dist.leaf)
        } else {
            format!("lib/{}.xs", self.dist.path)
        }
    }

    fn compiler_warning(&mut self, out: &mut String) {
        let leaf = self.xs_source();
        let line = 40 + self.rng.below(800);
        if !self.m.clang {
            out.push_str(&leaf);
            out.push_str(": In function '");
            self.xs_function(out);
            out.push_str("':\n");
        }
        out.push_str(&leaf);
        out.push(':');
        push_usize(out, line);
        out.push(':');
        push_usize(out, 5 + self.rng.below(30));
        let (msg, src) = *self.rng.pick(&[
            ("warning: unused variable 'len' [-Wunused-variable]", "    STRLEN len;"),
            ("warning: comparison of integer expressions of different signedness: 'int' and 'STRLEN' {aka 'long unsigned int'} [-Wsign-compare]", "    for (i = 0; i < len; i++) {"),
            ("warning: unused variable 'RETVAL' [-Wunused-variable]", "    SV * RETVAL;"),
            ("warning: 'sv' may be used uninitialized [-Wmaybe-uninitialized]", "    return sv;"),
        ]);
        out.push_str(": ");
        out.push_str(msg);
        out.push('\n');
        if self.m.clang {
            out.push_str(src);
            out.push_str("\n           ^\n1 warning generated.\n");
        } else if self.m.minor >= 26 {
            push_right(out, &num(line), 5);
            out.push_str(" | ");
            out.push_str(src);
            out.push_str("\n      |            ^~~\n");
        }
    }

    fn compiler_error(&mut self, out: &mut String) {
        let leaf = self.xs_source();
        let line = 8 + self.rng.below(30);
        match self.rng.below(100) {
            0..=54 => {
                let (header, _, _) = *self.rng.pick(C_LIBS);
                out.push_str(&leaf);
                out.push(':');
                push_usize(out, line);
                out.push_str(":10: fatal error: ");
                if self.m.clang {
                    out.push('\'');
                    out.push_str(header);
                    out.push_str("' file not found\n#include <");
                    out.push_str(header);
                    out.push_str(">\n         ^~~~~~~~~~\n1 error generated.\n");
                } else {
                    out.push_str(header);
                    out.push_str(": No such file or directory\n");
                    if self.m.minor >= 26 {
                        push_right(out, &num(line), 5);
                        out.push_str(" | #include <");
                        out.push_str(header);
                        out.push_str(">\n      |          ^~~~~~~~~~~\n");
                    } else {
                        out.push_str(" #include <");
                        out.push_str(header);
                        out.push_str(">\n          ^\n");
                    }
                    out.push_str("compilation terminated.\n");
                }
            }
            55..=79 => {
                let line = 100 + self.rng.below(700);
                let (func, hint) = *self.rng.pick(&[
                    ("sv_2pv_nolen", "SvPV_nolen"),
                    ("Perl_croak_nocontext", "croak_nocontext"),
                    ("newRV_inc", "newRV"),
                    ("PL_na", "PL_sv_no"),
                    ("hv_iterinit", "hv_iternext"),
                ]);
                if !self.m.clang {
                    out.push_str(&leaf);
                    out.push_str(": In function '");
                    self.xs_function(out);
                    out.push_str("':\n");
                }
                out.push_str(&leaf);
                out.push(':');
                push_usize(out, line);
                out.push_str(":5: error: implicit declaration of function '");
                out.push_str(func);
                out.push_str("'; did you mean '");
                out.push_str(hint);
                out.push_str("'? [-Wimplicit-function-declaration]\n");
                if self.m.clang {
                    out.push_str("1 error generated.\n");
                }
            }
            _ => {
                let line = 100 + self.rng.below(700);
                out.push_str(&leaf);
                out.push(':');
                push_usize(out, line);
                out.push_str(":31: error: passing argument 2 of 'Perl_sv_setpvn' from incompatible pointer type [-Wincompatible-pointer-types]\n");
                out.push_str(&leaf);
                out.push(':');
                push_usize(out, line + 2);
                out.push_str(":12: error: 'struct ");
                out.push_str(&self.dist.leaf.to_ascii_lowercase());
                out.push_str("_ctx' has no member named 'buf'\n");
            }
        }
    }

    // ---- prerequisites -------------------------------------------------------------------------

    fn have_version(
        &self,
        name: &str,
        versions: &'static [&'static str],
        need_idx: usize,
    ) -> &'static str {
        let top = versions.len() - 1;
        let h = mix64(self.m.seed ^ fnv(name));
        let back = (h % 3) as usize;
        let idx = top.saturating_sub(back).max(need_idx.min(top));
        versions[idx]
    }

    fn prereqs(&mut self, out: &mut String) {
        out.push_str(RULE);
        out.push_str("PREREQUISITES\n");
        out.push_str(RULE);
        out.push_str("\nPrerequisite modules loaded:\n\n");
        if self.no_prereqs {
            out.push_str("    No requirements found\n\n");
            return;
        }
        let world = self.world;
        let mut r = Rng::new(self.dist.shape ^ 0x9E7E_0001);
        let mut rows: Vec<Row> = Vec::with_capacity(24);
        // runtime
        if r.chance(550) {
            let need = *r.pick(&[
                "5.006", "5.008", "5.008001", "5.010", "5.010001", "5.012", "5.014", "5.016",
                "5.020",
            ]);
            rows.push(Row {
                section: 0,
                name: "perl",
                need,
                have: &self.m.perl_num,
                older: None,
                ok: true,
            });
        }
        let n = r.skewed(10);
        for _ in 0..n {
            let (name, versions) = COMMON_MODULES[world.zipf_index(&mut r, COMMON_MODULES.len())];
            if rows.iter().any(|x| x.name == name) {
                continue;
            }
            let need_idx = if r.chance(350) {
                0
            } else {
                r.below(versions.len() / 2 + 1)
            };
            let need = if need_idx == 0 && r.chance(500) {
                "0"
            } else {
                versions[need_idx]
            };
            let have = self.have_version(name, versions, need_idx);
            let older = if need_idx > 0 && need != "0" {
                Some(versions[need_idx - 1])
            } else {
                None
            };
            rows.push(Row {
                section: 0,
                name,
                need,
                have,
                older,
                ok: true,
            });
        }
        for _ in 0..r.skewed(4) {
            let d = &world.dists[world.dist_zipf.sample(&mut r)];
            if std::ptr::eq(d, self.dist) || rows.iter().any(|x| x.name == d.module) {
                continue;
            }
            let need = if r.chance(400) {
                "0"
            } else {
                d.versions[0].as_str()
            };
            let h = mix64(self.m.seed ^ fnv(&d.name)) as usize;
            let have = d.versions[d.versions.len() - 1 - h % d.versions.len().min(2)].as_str();
            rows.push(Row {
                section: 0,
                name: d.module.as_str(),
                need,
                have,
                older: None,
                ok: true,
            });
        }
        // build / test
        let (tm_name, tm_versions) = TEST_MODULES[0];
        let need_idx = r.below(4);
        rows.push(Row {
            section: 1,
            name: tm_name,
            need: tm_versions[need_idx],
            have: self.have_version(tm_name, tm_versions, need_idx),
            older: None,
            ok: true,
        });
        for _ in 0..r.skewed(5) {
            let (name, versions) =
                TEST_MODULES[1 + world.zipf_index(&mut r, TEST_MODULES.len() - 1)];
            if rows.iter().any(|x| x.name == name && x.section == 1) {
                continue;
            }
            let need = if r.chance(600) { "0" } else { versions[0] };
            let have = self.have_version(name, versions, 0);
            rows.push(Row {
                section: 1,
                name,
                need,
                have,
                older: None,
                ok: true,
            });
        }
        if !self.cpanm && self.dist.tool == BuildTool::MakeMaker {
            rows.push(Row {
                section: 1,
                name: "ExtUtils::MakeMaker",
                need: "0",
                have: TOOLCHAIN[6].1[self.m.era],
                older: None,
                ok: true,
            });
        }
        // configure
        let (cname, cneeds): (&str, &[&str]) = match self.dist.tool {
            BuildTool::MakeMaker => (
                "ExtUtils::MakeMaker",
                &["0", "6.30", "6.52", "6.64", "6.76", "7.12"],
            ),
            BuildTool::ModuleBuild => ("Module::Build", &["0.28", "0.3601", "0.4004", "0.4205"]),
            BuildTool::ModuleBuildTiny => ("Module::Build::Tiny", &["0.034", "0.039", "0.046"]),
        };
        let cneed = *r.pick(cneeds);
        let chave = match self.dist.tool {
            BuildTool::MakeMaker => TOOLCHAIN[6].1[self.m.era],
            BuildTool::ModuleBuild => TOOLCHAIN[12].1[self.m.era],
            BuildTool::ModuleBuildTiny => *r.pick(&["0.039", "0.047", "0.048", "0.051"]),
        };
        let chave = if chave == "n/a" { "0.4234" } else { chave };
        rows.push(Row {
            section: 2,
            name: cname,
            need: cneed,
            have: chave,
            older: None,
            ok: true,
        });
        if self.dist.xs && r.chance(400) {
            rows.push(Row {
                section: 2,
                name: "ExtUtils::ParseXS",
                need: "3.18",
                have: TOOLCHAIN[8].1[self.m.era],
                older: None,
                ok: true,
            });
        }

        // Report-specific problems.
        if let Some(missing) = self.missing {
            if let Some(row) = rows.iter_mut().find(|x| x.name == missing) {
                row.have = "n/a";
                row.ok = false;
            } else if self.rng.chance(500) {
                rows.push(Row {
                    section: 0,
                    name: missing,
                    need: "0",
                    have: "n/a",
                    older: None,
                    ok: false,
                });
            }
        }
        if self.grade != G_PASS && self.rng.chance(60) {
            self.outdated = true;
            if let Some(row) = rows.iter_mut().find(|x| x.older.is_some()) {
                row.have = row.older.unwrap_or(row.have);
                row.ok = false;
            }
        }

        let name_w = rows.iter().map(|x| x.name.len()).max().unwrap_or(0).max(6);
        let need_w = rows.iter().map(|x| x.need.len()).max().unwrap_or(0).max(4);
        let have_w = rows.iter().map(|x| x.have.len()).max().unwrap_or(0).max(4);
        let titles: [&str; 3] = if self.cpanm {
            ["runtime", "build", "configure"]
        } else {
            ["requires", "build_requires", "configure_requires"]
        };
        for (s, title) in titles.iter().enumerate() {
            let mut section: Vec<&Row> = rows.iter().filter(|x| x.section == s).collect();
            if section.is_empty() {
                continue;
            }
            section.sort_by(|a, b| {
                a.name
                    .bytes()
                    .map(|c| c.to_ascii_lowercase())
                    .cmp(b.name.bytes().map(|c| c.to_ascii_lowercase()))
            });
            out.push_str(title);
            out.push_str(":\n\n    ");
            push_padded(out, "Module", name_w);
            out.push(' ');
            push_padded(out, "Need", need_w);
            out.push(' ');
            push_padded(out, "Have", have_w);
            out.push_str("\n    ");
            for w in [name_w, need_w, have_w] {
                for _ in 0..w {
                    out.push('-');
                }
                out.push(' ');
            }
            out.pop();
            out.push('\n');
            for row in section {
                out.push_str(if row.ok { "    " } else { "  ! " });
                push_padded(out, row.name, name_w);
                out.push(' ');
                push_padded(out, row.need, need_w);
                out.push(' ');
                push_padded(out, row.have, have_w);
                out.push('\n');
            }
            out.push('\n');
        }
        out.push('\n');
    }

    // ---- environment ---------------------------------------------------------------------------

    fn environment(&mut self, out: &mut String) {
        let m = self.m;
        out.push_str(RULE);
        out.push_str("ENVIRONMENT AND OTHER CONTEXT\n");
        out.push_str(RULE);
        out.push_str("\nEnvironment variables:\n\n");

        let sep = m.path_sep;
        let mut perl5lib = String::new();
        for d in &self.blib {
            if !perl5lib.is_empty() {
                perl5lib.push(sep);
            }
            perl5lib.push_str(d);
        }
        if let Some(ll) = &m.local_lib {
            if !perl5lib.is_empty() {
                perl5lib.push(sep);
            }
            perl5lib.push_str(ll);
        }
        let pid = num(self.pid);
        let recursion = if !self.blib.is_empty() && self.rng.chance(400) {
            format!("{},{}", self.rng.range(1200, 99_999), self.pid)
        } else {
            String::new()
        };
        let mut perl5opt = String::new();
        let mut executing = String::new();
        if self.configure_phase {
            perl5opt.push_str("-I");
            perl5opt.push_str(m.build_root.trim_end_matches("build"));
            perl5opt.push_str("tmp");
            perl5opt.push(m.dir_sep);
            perl5opt.push_str("CPAN-Reporter-lib-");
            const C: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            for _ in 0..4 {
                perl5opt.push(*self.rng.pick(C) as char);
            }
            perl5opt.push_str(" -MDevel::Autoflush");
            executing.push_str(&self.build_dir);
            executing.push(m.dir_sep);
            executing.push_str(if self.dist.tool == BuildTool::MakeMaker {
                "Makefile.PL"
            } else {
                "Build.PL"
            });
        }

        let mut vars: Vec<(&str, &str)> = Vec::with_capacity(32);
        if self.cpanm {
            for (k, v) in &m.env_cpanm {
                vars.push((k, v));
            }
        } else {
            for (k, v) in &m.env {
                vars.push((k, v));
            }
            vars.push(("PERL5_CPANPLUS_IS_RUNNING", &pid));
            vars.push(("PERL5_CPAN_IS_RUNNING", &pid));
            vars.push(("PERL5OPT", &perl5opt));
            if !recursion.is_empty() {
                vars.push(("PERL5_CPAN_IS_RUNNING_IN_RECURSION", &recursion));
            }
            if self.configure_phase {
                vars.push(("PERL", &m.perl_path));
                vars.push(("PERL5_CPAN_IS_EXECUTING", &executing));
            }
        }
        if !perl5lib.is_empty() {
            vars.push(("PERL5LIB", &perl5lib));
        }
        vars.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in &vars {
            out.push_str("    ");
            out.push_str(k);
            out.push_str(" = ");
            out.push_str(v);
            out.push('\n');
        }
        out.push_str("\nPerl special variables (and OS-specific diagnostics, for MSWin32):\n\n");
        out.push_str(if self.cpanm {
            &m.special_cpanm
        } else {
            &m.special_cpr
        });
        out.push_str("\nPerl module toolchain versions installed:\n\n");
        out.push_str(&m.toolchain);
        out.push_str("\n\n--\n\n");
        out.push_str(&m.perl_v);
        out.push_str("  %ENV:\n");
        for (k, v) in &vars {
            if k.starts_with("PERL") {
                out.push_str("    ");
                out.push_str(k);
                out.push_str("=\"");
                out.push_str(v);
                out.push_str("\"\n");
            }
        }
        out.push_str("  @INC:\n");
        for d in &self.blib {
            out.push_str("    ");
            out.push_str(d);
            out.push('\n');
        }
        if let Some(ll) = &m.local_lib {
            out.push_str("    ");
            out.push_str(ll);
            out.push('\n');
        }
        for d in &m.inc {
            out.push_str("    ");
            out.push_str(d);
            out.push('\n');
        }
        if m.minor < 26
            || !self.cpanm
                && vars
                    .iter()
                    .any(|(k, v)| *k == "PERL_USE_UNSAFE_INC" && *v == "1")
        {
            out.push_str("    .\n");
        }
        while out.ends_with('\n') {
            out.pop();
        }
    }
}

fn quote_num(n: usize) -> String {
    let mut s = String::with_capacity(8);
    s.push('\'');
    push_usize(&mut s, n);
    s.push('\'');
    s
}

/// Multi-line (got, expected) strings as they show up in `is()` failures.
#[rustfmt::skip]
const MULTILINE_PAIRS: &[(&str, &str)] = &[
    (
        "<html>\n<head><title>Test page</title></head>\n<body>\n<p class=\"greeting\">Hello, World</p>\n</body>\n</html>\n",
        "<html>\n<head><title>Test page</title></head>\n<body>\n<p class=\"greeting\">Hello, world!</p>\n</body>\n</html>\n",
    ),
    (
        "{\n   \"id\" : 1,\n   \"name\" : \"foo\",\n   \"tags\" : [\n      \"a\",\n      \"b\"\n   ]\n}\n",
        "{\n   \"id\" : \"1\",\n   \"name\" : \"foo\",\n   \"tags\" : [\n      \"a\",\n      \"b\"\n   ]\n}\n",
    ),
    (
        "---\nname: foo\nversion: 1.0\nrequires:\n  perl: 5.008\n",
        "---\nname: foo\nversion: '1.0'\nrequires:\n  perl: '5.008'\n",
    ),
    (
        "id,name,price\n1,apple,0.5\n2,banana,0.25\n",
        "id,name,price\r\n1,apple,0.5\r\n2,banana,0.25\r\n",
    ),
    (
        "Usage: app [options] <file>\n  -h, --help     show this help\n  -v, --verbose  be chatty\n",
        "Usage: app [options] <file>\n  -h, --help       show this help\n  -v, --verbose    be chatty\n  -q, --quiet      be quiet\n",
    ),
    (
        "SELECT me.id, me.name FROM users me WHERE ( me.active = ? ) ORDER BY me.id\n",
        "SELECT me.id, me.name FROM users me WHERE me.active = ? ORDER BY me.id\n",
    ),
];

/// Writes a multi-line string the way Test::Builder's diag shows it ("# " after each newline).
fn push_hash_continued(out: &mut String, s: &str) {
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\n# ");
        }
        out.push_str(line);
    }
}

/// TAP::Formatter's `_balanced_range`: ranges like `2, 4-6, 8`, wrapped into lines.
fn balanced_ranges(failed: &[usize], limit: usize) -> Vec<String> {
    let mut ranges: Vec<String> = Vec::new();
    let mut i = 0;
    while i < failed.len() {
        let start = failed[i];
        let mut end = start;
        while i + 1 < failed.len() && failed[i + 1] == end + 1 {
            i += 1;
            end = failed[i];
        }
        let mut s = num(start);
        if end != start {
            s.push('-');
            push_usize(&mut s, end);
        }
        ranges.push(s);
        i += 1;
    }
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut curr = 0;
    let mut it = ranges.into_iter().peekable();
    while it.peek().is_some() {
        if curr < limit {
            let r = it.next().expect("peeked");
            line.push_str(&r);
            line.push_str(", ");
            curr += r.len() + 2;
        } else {
            line.truncate(line.len() - 2);
            lines.push(std::mem::take(&mut line));
            curr = 0;
        }
    }
    if !line.is_empty() {
        line.truncate(line.len() - 2);
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).expect("valid JSON")
    }

    #[test]
    fn same_seed_same_output_different_seed_differs() {
        let mut a = ReportGenerator::new(42);
        let mut b = ReportGenerator::new(42);
        let mut c = ReportGenerator::new(43);
        let mut differs = 0;
        for _ in 0..50 {
            let (ra, rb, rc) = (a.next_report(), b.next_report(), c.next_report());
            assert_eq!(
                ra.to_metabase_submission(a.testers()),
                rb.to_metabase_submission(b.testers())
            );
            assert_eq!(
                serde_json::to_vec(&ra.to_v3_document(a.testers())).unwrap(),
                serde_json::to_vec(&rb.to_v3_document(b.testers())).unwrap()
            );
            assert_eq!(
                (ra.id, ra.created, ra.tester_index),
                (rb.id, rb.created, rb.tester_index)
            );
            if ra.textreport != rc.textreport {
                differs += 1;
            }
            assert_ne!(ra.id, rc.id);
        }
        assert!(
            differs > 40,
            "different seeds must give different streams ({differs}/50 differ)"
        );
        // The world is shared: every seed sees the same testers.
        let (ta, tc) = (a.testers(), c.testers());
        assert_eq!(ta.len(), tc.len());
        assert!(
            ta.iter()
                .zip(tc)
                .all(|(x, y)| x.user_guid == y.user_guid && x.secret == y.secret)
        );
    }

    #[test]
    fn size_and_grade_mix_match_cpan_testers() {
        let mut g = ReportGenerator::new(7);
        let n = 2000;
        let mut total = 0usize;
        let mut grades = [0usize; 4];
        for _ in 0..n {
            let r = g.next_report();
            total += serde_json::to_vec(&r.to_v3_document(g.testers()))
                .unwrap()
                .len();
            grades[GRADES.iter().position(|&x| x == r.grade).unwrap()] += 1;
        }
        let mean = total / n;
        assert!(
            (9_000..=14_000).contains(&mean),
            "mean v3 document size {mean} bytes"
        );
        for (i, want) in [75.0, 15.0, 7.0, 3.0].iter().enumerate() {
            let got = grades[i] as f64 * 100.0 / n as f64;
            assert!(
                (got - want).abs() <= 2.0,
                "{}: {got:.1} % (want {want} %)",
                GRADES[i]
            );
        }
    }

    #[test]
    fn metabase_body_round_trips_through_three_levels() {
        let mut g = ReportGenerator::new(3);
        let mut non_ascii_seen = false;
        for _ in 0..60 {
            let r = g.next_report();
            let tester = &g.testers()[r.tester_index];
            non_ascii_seen |= !r.textreport.is_ascii();
            let body = r.to_metabase_submission(g.testers());
            assert!(body.is_ascii(), "body must be pure ASCII");

            let level1 = parse(&body);
            let core = &level1["metadata"]["core"];
            assert_eq!(core["guid"], lower_uuid(r.id).as_str());
            assert_eq!(core["type"], "CPAN-Testers-Report");
            assert_eq!(
                core["creator"],
                format!("metabase:user:{}", tester.user_guid).as_str()
            );
            assert_eq!(
                core["resource"],
                format!("cpan:///distfile/{}/{}", r.author, r.filename).as_str()
            );
            assert_eq!(core["schema_version"], 1);
            assert_eq!(core["valid"], 1);
            assert_eq!(core["creation_time"], timestamp(r.created).as_str());
            assert_eq!(core["update_time"], core["creation_time"]);
            assert_eq!(core.as_object().unwrap().len(), 8);

            let level2 = parse(level1["content"].as_str().expect("content is a string"));
            let facts = level2.as_array().expect("array of facts");
            assert_eq!(facts.len(), 2);
            assert_eq!(
                facts[0]["metadata"]["core"]["type"],
                "CPAN-Testers-Fact-LegacyReport"
            );
            assert_eq!(
                facts[1]["metadata"]["core"]["type"],
                "CPAN-Testers-Fact-TestSummary"
            );
            let guids: Vec<&str> = facts
                .iter()
                .map(|f| f["metadata"]["core"]["guid"].as_str().unwrap())
                .collect();
            assert!(guids[0] != guids[1] && guids.iter().all(|g| *g != lower_uuid(r.id)));
            for f in facts {
                let c = &f["metadata"]["core"];
                assert_eq!(c["resource"], core["resource"]);
                assert_eq!(c["creator"], core["creator"]);
                assert_eq!(c["schema_version"], 1);
                assert_eq!(c["valid"], 1);
            }

            let legacy = parse(facts[0]["content"].as_str().unwrap());
            let summary = parse(facts[1]["content"].as_str().unwrap());
            let v_perl = format!("v{}", r.perl_version);
            for c in [&legacy, &summary] {
                assert_eq!(c["grade"], r.grade);
                assert_eq!(c["osname"], r.osname.as_str());
                assert_eq!(c["osversion"], r.osversion.as_str());
                assert_eq!(c["archname"], r.archname.as_str());
                assert_eq!(c["perl_version"], v_perl.as_str());
            }
            assert_eq!(legacy["textreport"], r.textreport.as_str());
            assert!(summary.get("textreport").is_none());
        }
        assert!(
            non_ascii_seen,
            "expected some non-ASCII text to exercise the escaping"
        );
    }

    #[test]
    fn json_strings_are_escaped_like_perl_json_ascii() {
        let mut s = String::new();
        push_json_string(&mut s, "a\"b\\c\nd\te\u{1}é😀/");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\te\\u0001\\u00e9\\ud83d\\ude00/\"");
        assert_eq!(
            serde_json::from_str::<String>(&s).unwrap(),
            "a\"b\\c\nd\te\u{1}é😀/"
        );
    }

    #[test]
    fn register_body_has_profile_and_secret() {
        let g = ReportGenerator::new(1);
        let testers = g.testers();
        assert!(testers.len() >= 200);
        let utf8 = testers
            .iter()
            .find(|t| !t.name.is_ascii())
            .expect("some non-ASCII tester name");
        for tester in [&testers[0], utf8] {
            let body = metabase_register_body(tester);
            assert!(body.is_ascii());
            let facts = parse(&body);
            let facts = facts.as_array().unwrap();
            assert_eq!(facts.len(), 2);
            let resource = format!("metabase:user:{}", tester.user_guid);
            let profile = &facts[0]["metadata"]["core"];
            assert_eq!(profile["type"], "Metabase-User-Profile");
            assert_eq!(profile["guid"], tester.user_guid.as_str());
            assert_eq!(profile["resource"], resource.as_str());
            assert_eq!(profile["creator"], resource.as_str());
            assert_eq!(profile["schema_version"], 1);
            assert_eq!(profile["valid"], 1);
            let secret = &facts[1];
            assert_eq!(secret["metadata"]["core"]["type"], "Metabase-User-Secret");
            assert_ne!(
                secret["metadata"]["core"]["guid"],
                tester.user_guid.as_str()
            );
            assert_eq!(secret["metadata"]["core"]["resource"], resource.as_str());
            assert_eq!(secret["content"], tester.secret.as_str());

            let inner = parse(facts[0]["content"].as_str().unwrap());
            let inner = inner.as_array().unwrap();
            assert_eq!(
                inner[0]["metadata"]["core"]["type"],
                "Metabase-User-FullName"
            );
            assert_eq!(
                inner[1]["metadata"]["core"]["type"],
                "Metabase-User-EmailAddress"
            );
            // String facts carry UTF-8 bytes as characters.
            let decode = |v: &Value| {
                let bytes: Vec<u8> = v
                    .as_str()
                    .unwrap()
                    .chars()
                    .map(|c| c as u32 as u8)
                    .collect();
                String::from_utf8(bytes).unwrap()
            };
            assert_eq!(decode(&inner[0]["content"]), tester.name);
            assert_eq!(decode(&inner[1]["content"]), tester.email);
        }
        let mut guids: Vec<&str> = testers.iter().map(|t| t.user_guid.as_str()).collect();
        assert!(
            guids
                .iter()
                .all(|g| Uuid::parse_str(g).is_ok() && *g == g.to_ascii_lowercase())
        );
        guids.sort_unstable();
        guids.dedup();
        assert_eq!(guids.len(), testers.len());
    }

    #[test]
    fn v3_document_has_every_required_field() {
        let mut g = ReportGenerator::new(11);
        for _ in 0..40 {
            let r = g.next_report();
            let doc = r.to_v3_document(g.testers());
            let id = doc["id"].as_str().unwrap();
            assert_eq!(Uuid::parse_str(id).unwrap(), r.id);
            assert_eq!(id, id.to_ascii_lowercase());
            let created = doc["created"].as_str().unwrap();
            assert!(created.ends_with('Z'));
            let parsed =
                OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
                    .unwrap();
            assert_eq!(parsed, r.created);
            let tester = &g.testers()[r.tester_index];
            assert_eq!(doc["reporter"]["name"], tester.name.as_str());
            assert_eq!(doc["reporter"]["email"], tester.email.as_str());
            let lang = &doc["environment"]["language"];
            assert_eq!(lang["name"], "Perl 5");
            let version = lang["version"].as_str().unwrap();
            let mut parts = version.split(' ').next().unwrap().split('.');
            assert_eq!(parts.next(), Some("5"));
            assert!(
                parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
                "{version}"
            );
            assert_eq!(lang["archname"], r.archname.as_str());
            assert!(lang["toolchain"]["Test::Harness"].is_string());
            assert_eq!(doc["environment"]["system"]["osname"], r.osname.as_str());
            assert_eq!(
                doc["environment"]["system"]["osversion"],
                r.osversion.as_str()
            );
            let ua = doc["environment"]["user_agent"].as_str().unwrap();
            match r.style {
                ClientStyle::CpanReporter => assert!(
                    r.textreport
                        .contains(&format!("created by {}.", ua.replace('/', "-")))
                ),
                ClientStyle::CpanmReporter => assert!(ua.starts_with("App-cpanminus-reporter/")),
            }
            assert_eq!(doc["distribution"]["name"], r.dist.as_str());
            assert_eq!(doc["distribution"]["version"], r.version.as_str());
            assert!(GRADES.contains(&doc["result"]["grade"].as_str().unwrap()));
            assert_eq!(
                doc["result"]["output"]["uncategorized"],
                r.textreport.as_str()
            );
        }
    }

    #[test]
    fn text_reports_have_the_client_layout() {
        let mut g = ReportGenerator::new(5);
        let mut styles = [0usize; 2];
        for _ in 0..300 {
            let r = g.next_report();
            let t = &r.textreport;
            assert!(t.starts_with(PREAMBLE), "preamble");
            assert!(!t.ends_with('\n'), "trailing newlines are trimmed");
            assert!(
                r.filename
                    .starts_with(&format!("{}-{}.", r.dist, r.version))
            );
            assert!(
                r.author
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            );
            for marker in [
                "\nTESTER COMMENTS\n",
                "\nPROGRAM OUTPUT\n",
                "\nPREREQUISITES\n",
                "\nENVIRONMENT AND OTHER CONTEXT\n",
                "\nPerl module toolchain versions installed:\n",
                "\n\n--\n\nSummary of my perl5 (revision 5 version ",
                "\n  @INC:\n",
            ] {
                assert!(t.contains(marker), "missing {marker:?}");
            }
            let header = format!(
                "This is a computer-generated report for {}-{}\non perl {}, created by ",
                r.dist, r.version, r.perl_version
            );
            assert!(t.contains(&header));
            match r.style {
                ClientStyle::CpanReporter => {
                    styles[0] += 1;
                    assert!(t.contains(", created by CPAN-Reporter-1.20"));
                }
                ClientStyle::CpanmReporter => {
                    styles[1] += 1;
                    assert!(t.contains(", created by App::cpanminus::reporter 0."));
                    assert!(t.contains("Output from '':"));
                }
            }
            match r.grade {
                "pass" => assert!(t.contains("Result: PASS") || t.contains("-> OK")),
                "fail" => assert!(t.contains("Result: FAIL") || t.contains("Bailout called.")),
                "na" => assert!(t.contains("support is not available")),
                _ => assert!(t.contains("inconclusive result")),
            }
        }
        assert!(
            styles[0] > 150 && styles[1] > 20,
            "both client styles appear: {styles:?}"
        );
    }
}
