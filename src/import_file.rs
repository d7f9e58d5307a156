//! `rapport import`: reads history from files and sends it to a running server through
//! `rapport.v1.ImportService`, in bounded batches, showing progress (docs/imports.md).
//!
//! - `rapport import responses --survey ID FILE.csv`: a CSV export of answers, with
//!   one header row. Column names default to those of common exports and are mapped
//!   with flags where a file differs.
//! - `rapport import events FILE.jsonl`: one `ActivityEvent` per line in the API's JSON
//!   form (`{"messageId": …, "customerId": …, "time": …, "action": {…}}`).
//!
//! Both can be run again after an interruption: what was imported before is reported
//! as a duplicate and nothing is written twice.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use prost_reflect::{DescriptorPool, DynamicMessage};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::grpc::pb;
use crate::grpc::pb::import_service_client::ImportServiceClient;

/// Most items per call (the server's limit is 1 000).
pub const MAX_BATCH: usize = 1_000;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import historical survey answers from a CSV export.
    Responses(ResponsesArgs),
    /// Import historical activity events (JSON lines), up to 3 660 days old.
    Events(EventsArgs),
}

/// Where the server is and the key to call it with.
#[derive(Debug, Args)]
pub struct Target {
    /// The gRPC address of a running rapport server.
    #[arg(long, env = "RAPPORT_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// A secret key of the tenant to import into.
    #[arg(long = "api-key", env = "RAPPORT_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// Items per call, 1–1 000: smaller batches are gentler on live traffic.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch_size: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Csv,
}

#[derive(Debug, Args)]
pub struct ResponsesArgs {
    #[command(flatten)]
    pub target: Target,
    /// The file's format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    /// The rapport survey the answers belong to.
    #[arg(long)]
    pub survey: String,
    #[command(flatten)]
    pub columns: Columns,
    /// Open the follow-ups that low scores would have opened.
    #[arg(long)]
    pub open_follow_ups: bool,
    /// Append `response.recorded` events (they reach webhooks and the event stream).
    #[arg(long)]
    pub emit_events: bool,
    /// The CSV file.
    pub file: PathBuf,
}

/// Which CSV column holds what. Defaults follow common survey-tool exports.
#[derive(Debug, Clone, Args)]
pub struct Columns {
    /// The answer's id in the source (deduplicates repeated imports).
    #[arg(long, default_value = "Response ID")]
    pub id_column: String,
    /// The customer's id (an e-mail address works).
    #[arg(long, default_value = "Email")]
    pub customer_column: String,
    /// The score.
    #[arg(long, default_value = "Score")]
    pub score_column: String,
    /// The comment (optional column).
    #[arg(long, default_value = "Comment")]
    pub comment_column: String,
    /// When the answer was given: RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC) or Unix seconds.
    #[arg(long, default_value = "Created At")]
    pub time_column: String,
    /// When the invitation was sent (optional; same formats).
    #[arg(long)]
    pub invited_column: Option<String>,
    /// A column to keep as a property of the answer (repeatable).
    #[arg(long = "property-column")]
    pub property_columns: Vec<String>,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            id_column: "Response ID".into(),
            customer_column: "Email".into(),
            score_column: "Score".into(),
            comment_column: "Comment".into(),
            time_column: "Created At".into(),
            invited_column: None,
            property_columns: Vec::new(),
        }
    }
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub target: Target,
    /// The JSON-lines file.
    pub file: PathBuf,
}

/// The items of a file with their line numbers, and the lines that could not be read.
pub type Read<T> = (Vec<(u64, T)>, Vec<BadLine>);

/// A line of the input that could not be read, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: u64,
    pub reason: String,
}

/// A time as exports write it: RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), or Unix seconds.
pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(raw, f) {
            return Some(t.and_utc());
        }
    }
    for f in ["%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S%z"] {
        if let Ok(t) = DateTime::parse_from_str(raw, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    raw.parse::<i64>().ok().and_then(|s| DateTime::from_timestamp(s, 0))
}

fn pb_time(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

/// Reads a CSV export into answers for `survey`; rows that cannot be read are
/// returned apart, by line number (the header is line 1).
pub fn read_csv(
    input: impl std::io::Read,
    survey: &str,
    columns: &Columns,
) -> anyhow::Result<Read<pb::ImportedResponse>> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(input);
    let headers = reader.headers().context("reading the CSV header")?.clone();
    let find = |name: &str| headers.iter().position(|h| h.trim_start_matches('\u{feff}') == name);
    let required = |name: &str, flag: &str| {
        find(name).with_context(|| {
            format!("the CSV has no column {name:?} (choose another with --{flag}); it has: {}", list(&headers))
        })
    };
    let id = required(&columns.id_column, "id-column")?;
    let customer = required(&columns.customer_column, "customer-column")?;
    let score = required(&columns.score_column, "score-column")?;
    let time = required(&columns.time_column, "time-column")?;
    let comment = find(&columns.comment_column);
    let invited = match &columns.invited_column {
        Some(c) => Some(required(c, "invited-column")?),
        None => None,
    };
    let props: Vec<(String, usize)> = columns
        .property_columns
        .iter()
        .map(|c| required(c, "property-column").map(|i| (c.clone(), i)))
        .collect::<anyhow::Result<_>>()?;

    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (n, record) in reader.records().enumerate() {
        let line = n as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                bad.push(BadLine { line, reason: e.to_string() });
                continue;
            }
        };
        let cell = |i: usize| record.get(i).unwrap_or("").to_owned();
        let parsed_score = match cell(score).parse::<i32>() {
            Ok(s) => s,
            Err(_) => {
                bad.push(BadLine { line, reason: format!("{}: not an integer score", columns.score_column) });
                continue;
            }
        };
        let Some(at) = parse_time(&cell(time)) else {
            bad.push(BadLine { line, reason: format!("{}: not a time", columns.time_column) });
            continue;
        };
        let invitation_time = match invited.map(cell).filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => match parse_time(&raw) {
                Some(t) => Some(pb_time(t)),
                None => {
                    bad.push(BadLine { line, reason: "invitation time: not a time".into() });
                    continue;
                }
            },
        };
        let properties: HashMap<String, String> =
            props.iter().map(|(name, i)| (name.clone(), cell(*i))).filter(|(_, v)| !v.is_empty()).collect();
        good.push((
            line,
            pb::ImportedResponse {
                external_id: cell(id),
                survey_id: survey.to_owned(),
                customer_id: cell(customer),
                score: Some(parsed_score),
                recorded_time: Some(pb_time(at)),
                invitation_time,
                comment: comment.map(cell).unwrap_or_default(),
                properties,
            },
        ));
    }
    Ok((good, bad))
}

fn list(headers: &csv::StringRecord) -> String {
    headers.iter().map(|h| format!("{h:?}")).collect::<Vec<_>>().join(", ")
}

/// Reads JSON lines of `ActivityEvent`s (the API's JSON form); blank lines are skipped.
pub fn read_events(input: impl BufRead) -> anyhow::Result<Read<pb::ActivityEvent>> {
    let pool = DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).context("the built-in descriptors")?;
    let desc = pool.get_message_by_name("rapport.v1.ActivityEvent").context("the ActivityEvent descriptor")?;
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (n, text) in input.lines().enumerate() {
        let line = n as u64 + 1;
        let text = text.with_context(|| format!("reading line {line}"))?;
        if text.trim().is_empty() {
            continue;
        }
        let mut de = serde_json::Deserializer::from_str(&text);
        match DynamicMessage::deserialize(desc.clone(), &mut de)
            .map_err(|e| e.to_string())
            .and_then(|m| m.transcode_to::<pb::ActivityEvent>().map_err(|e| e.to_string()))
        {
            Ok(e) => good.push((line, e)),
            Err(reason) => bad.push(BadLine { line, reason }),
        }
    }
    Ok((good, bad))
}

/// Counts of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub imported: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub unreadable: u64,
}

async fn connect(
    target: &Target,
) -> anyhow::Result<(ImportServiceClient<Channel>, MetadataValue<tonic::metadata::Ascii>)> {
    let channel = Channel::from_shared(target.server.clone())
        .with_context(|| format!("--server {:?} is not a URL", target.server))?
        .connect()
        .await
        .with_context(|| format!("connecting to {}", target.server))?;
    let auth: MetadataValue<_> =
        format!("Bearer {}", target.api_key).parse().context("the API key is not a valid header value")?;
    Ok((ImportServiceClient::new(channel).max_decoding_message_size(16 * 1024 * 1024), auth))
}

fn report(out: &mut impl Write, bad: &[BadLine]) -> std::io::Result<()> {
    for b in bad.iter().take(20) {
        writeln!(out, "line {}: {}", b.line, b.reason)?;
    }
    if bad.len() > 20 {
        writeln!(out, "… and {} more lines", bad.len() - 20)?;
    }
    Ok(())
}

/// What a server said of one batch: its counts and the items it rejected
/// (position in the batch, field, reason).
struct BatchReply {
    imported: u64,
    duplicates: u64,
    rejected: Vec<(usize, String, String)>,
}

/// Sends `items` in batches through `send`, adding to `tally` and writing progress
/// and every rejected line to `out`.
async fn send_all<T: Clone>(
    items: &[(u64, T)],
    batch_size: usize,
    what: &str,
    tally: &mut Tally,
    out: &mut impl Write,
    mut send: impl AsyncFnMut(Vec<T>) -> anyhow::Result<BatchReply>,
) -> anyhow::Result<()> {
    let total = items.len();
    let mut sent = 0;
    for batch in items.chunks(batch_size) {
        let reply = send(batch.iter().map(|(_, item)| item.clone()).collect()).await?;
        tally.imported += reply.imported;
        tally.duplicates += reply.duplicates;
        tally.rejected += reply.rejected.len() as u64;
        for (index, field, reason) in &reply.rejected {
            let line = batch.get(*index).map(|(l, _)| *l).unwrap_or(0);
            writeln!(out, "line {line}: {field} {reason}")?;
        }
        sent += batch.len();
        writeln!(
            out,
            "{sent}/{total} {what} sent: {} imported, {} duplicates, {} rejected",
            tally.imported, tally.duplicates, tally.rejected
        )?;
    }
    Ok(())
}

/// Runs `rapport import …`, writing progress and per-line problems to `out`.
pub async fn run(command: ImportCommand, out: &mut impl Write) -> anyhow::Result<Tally> {
    match command {
        ImportCommand::Responses(args) => {
            let file = std::fs::File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
            let (items, bad) = read_csv(file, &args.survey, &args.columns)?;
            report(out, &bad)?;
            let (mut client, auth) = connect(&args.target).await?;
            let mut tally = Tally { unreadable: bad.len() as u64, ..Tally::default() };
            let options = (args.open_follow_ups, args.emit_events);
            send_all(&items, usize::from(args.target.batch_size), "answers", &mut tally, out, async |responses| {
                let mut req = tonic::Request::new(pb::ImportResponsesRequest {
                    responses,
                    open_follow_ups: options.0,
                    emit_events: options.1,
                });
                req.metadata_mut().insert("authorization", auth.clone());
                let reply = client.import_responses(req).await.map_err(|s| status_error(&s))?.into_inner();
                Ok(BatchReply {
                    imported: reply.imported as u64,
                    duplicates: reply.duplicates as u64,
                    rejected: reply
                        .results
                        .into_iter()
                        .filter(|r| r.status == pb::ImportStatus::Rejected as i32)
                        .map(|r| (r.index as usize, r.field, r.reason))
                        .collect(),
                })
            })
            .await?;
            Ok(tally)
        }
        ImportCommand::Events(args) => {
            let file = std::fs::File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
            let (items, bad) = read_events(std::io::BufReader::new(file))?;
            report(out, &bad)?;
            let (mut client, auth) = connect(&args.target).await?;
            let mut tally = Tally { unreadable: bad.len() as u64, ..Tally::default() };
            send_all(&items, usize::from(args.target.batch_size), "events", &mut tally, out, async |events| {
                let mut req = tonic::Request::new(pb::ImportEventsRequest { events });
                req.metadata_mut().insert("authorization", auth.clone());
                let reply = client.import_events(req).await.map_err(|s| status_error(&s))?.into_inner();
                Ok(BatchReply {
                    imported: reply.accepted as u64,
                    duplicates: reply.duplicates as u64,
                    rejected: reply
                        .results
                        .into_iter()
                        .filter(|r| r.status == pb::ActivityEventStatus::Rejected as i32)
                        .map(|r| (r.index as usize, r.field, r.reason))
                        .collect(),
                })
            })
            .await?;
            Ok(tally)
        }
    }
}

fn status_error(s: &tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt as _;
    let fields: Vec<String> = s
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect())
        .unwrap_or_default();
    if fields.is_empty() {
        anyhow::anyhow!("the server refused the batch: {:?}: {}", s.code(), s.message())
    } else {
        anyhow::anyhow!("the server refused the batch: {:?}: {}", s.code(), fields.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn times_in_the_forms_exports_use() {
        use chrono::TimeZone as _;
        let t = Utc.with_ymd_and_hms(2024, 3, 5, 8, 30, 0).unwrap();
        assert_eq!(parse_time("2024-03-05T08:30:00Z"), Some(t));
        assert_eq!(parse_time("2024-03-05T09:30:00+01:00"), Some(t));
        assert_eq!(parse_time("2024-03-05 08:30:00"), Some(t));
        assert_eq!(parse_time("2024-03-05 01:30:00 -0700"), Some(t));
        assert_eq!(parse_time(" 1709627400 "), Some(t));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn a_csv_export_with_mapped_columns_and_bad_rows() {
        let csv = "\u{feff}Response ID,Email,Score,Comment,Created At,Plan\n\
                   r1,alice@example.com,9,\"great, fast\",2024-03-05 08:30:00,pro\n\
                   r2,bob@example.com,x,,2024-03-05 08:30:00,free\n\
                   r3,carol@example.com,3,,not a time,free\n\
                   r4,dan@example.com,0,,1709627400,\n";
        let columns = Columns { property_columns: vec!["Plan".into()], ..Columns::default() };
        let (good, bad) = read_csv(csv.as_bytes(), "s1", &columns).unwrap();
        assert_eq!(good.len(), 2);
        let (line, r) = &good[0];
        assert_eq!(*line, 2);
        assert_eq!((r.external_id.as_str(), r.customer_id.as_str(), r.score), ("r1", "alice@example.com", Some(9)));
        assert_eq!(r.comment, "great, fast");
        assert_eq!(r.properties["Plan"], "pro");
        assert!(good[1].1.properties.is_empty());
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![3, 4]);
        let missing = read_csv("Id,Email\n".as_bytes(), "s1", &Columns::default()).unwrap_err();
        assert!(format!("{missing:#}").contains("--id-column"), "{missing:#}");
    }

    #[test]
    fn events_in_the_api_json_form() {
        let text = "{\"messageId\":\"m1\",\"customerId\":\"c1\",\"time\":\"2024-01-02T03:04:05Z\",\
                    \"action\":{\"name\":\"export\",\"properties\":{\"plan\":\"pro\"}}}\n\n\
                    {\"messageId\":\"m2\",\"customerId\":\"c1\",\"time\":\"2024-01-02T03:04:05Z\",\
                    \"session\":{\"activitySeconds\":\"60\"}}\n\
                    {\"messageId\": 3}\n";
        let (good, bad) = read_events(text.as_bytes()).unwrap();
        assert_eq!(good.len(), 2);
        assert_eq!(good[0].1.message_id, "m1");
        assert_eq!(good[1].0, 3);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 4);
    }

    proptest! {
        #[test]
        fn no_input_makes_the_readers_panic(text in ".{0,200}") {
            let _ = read_csv(text.as_bytes(), "s", &Columns::default());
            let _ = read_events(text.as_bytes());
            let _ = parse_time(&text);
        }
    }
}
