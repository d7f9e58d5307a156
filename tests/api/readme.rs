//! The README's quick start works as written: its shell blocks, taken from README.md
//! between the `quickstart` markers, run in order in one POSIX shell with curl against
//! a real server, with `RAPPORT` and `KEY` set as the README tells the reader to set
//! them. Every command must succeed and no call may answer an error; at the end the
//! answer, its comment, the follow-up it opened (acknowledged) and the direct answer
//! are there, as a user reading them over gRPC would find them.

use crate::helpers::*;

crate::on_both!(the_readme_quick_start_runs_with_curl_alone);

/// The `sh` blocks of the README's quick start, in order.
fn quick_start_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("<!-- quickstart:begin -->").expect("README.md has a quickstart:begin marker");
    let end = readme.find("<!-- quickstart:end -->").expect("README.md has a quickstart:end marker");
    assert!(
        readme[..start].contains("export RAPPORT=") && readme[..start].contains("export KEY="),
        "the README sets RAPPORT and KEY before the quick start"
    );
    let mut blocks = Vec::new();
    let mut rest = &readme[start..end];
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + "```sh\n".len()..];
        let close = body.find("```").expect("a closed code block");
        blocks.push(body[..close].to_string());
        rest = &body[close + 3..];
    }
    blocks
}

async fn the_readme_quick_start_runs_with_curl_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let blocks = quick_start_blocks();
    assert!(blocks.len() >= 5, "the quick start has {} shell blocks", blocks.len());

    // One shell, block after block, stopping at the first failing command; a marker
    // after each block says how far it got.
    let mut script = String::from("set -eu\n");
    for (i, block) in blocks.iter().enumerate() {
        script.push_str(block);
        script.push_str(&format!("\necho '\n@@ block {} done'\n", i + 1));
    }
    let (http, key) = (app.http.clone(), app.key.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("RAPPORT", http)
            .env("KEY", key)
            .output()
            .expect("run sh")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = format!("exit: {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}", out.status.code());
    assert!(out.status.success(), "the quick start failed:\n{report}");
    assert!(stdout.contains(&format!("@@ block {} done", blocks.len())), "not every block ran:\n{report}");
    assert!(!stdout.contains("\"code\":"), "a call of the quick start answered an error:\n{report}");

    // What the reader was promised: one answer by token with its comment and the
    // acknowledged follow-up it opened, and one direct answer.
    let responses = app.all_responses().await;
    assert_eq!(responses.len(), 2, "{responses:?}");
    let low = responses.iter().find(|r| r.score == 3).expect("the score of 3");
    assert_eq!(low.comment, "Checkout is too slow");
    assert!(!low.invitation_id.is_empty(), "answered through the invitation's token");
    assert!(responses.iter().any(|r| r.score == 10 && r.invitation_id.is_empty()), "the direct answer");
    let follow_ups = app.all_follow_ups().await;
    assert_eq!(follow_ups.len(), 1, "{follow_ups:?}");
    let f = &follow_ups[0];
    assert_eq!(f.response_id, low.id);
    assert_eq!(f.status, pb::FollowUpStatus::Acknowledged as i32);
    assert_eq!(f.answer.as_ref().map(|a| a.comment.as_str()), Some("Checkout is too slow"));
    assert!(stdout.contains("\"headline\":0"), "the metric shows NPS 0 over two answers:\n{report}");
}
