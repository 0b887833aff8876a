//! What a pull request preview says: the comment gitsync posts on a pull request for one stack,
//! from what previewing the head's deployment file and template found (docs/git-hosts.md,
//! "Reading a preview").

use crate::PreviewOutcome;

/// The most resource changes listed in one comment (hosts cap comments at 64 KiB or so).
const MAX_ROWS: usize = 200;
/// The most characters of a reason quoted in a comment.
const MAX_REASON: usize = 4000;

/// A table cell: one line, with the table's separator escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
        .replace('`', "'")
}

/// A quoted reason: at most [`MAX_REASON`] characters, its fences harmless.
fn quoted(reason: &str) -> String {
    let mut text: String = reason.chars().take(MAX_REASON).collect();
    if reason.chars().count() > MAX_REASON {
        text.push('…');
    }
    format!("```\n{}\n```", text.replace("```", "'''"))
}

/// The comment for `stack` previewed at `commit`, with the hidden `marker` line first.
pub fn comment(marker: &str, stack: &str, commit: &str, outcome: &PreviewOutcome) -> String {
    let short = commit.get(..12).unwrap_or(commit);
    let mut out = format!(
        "{marker}\n### gitsync preview of stack `{}`\n\n",
        cell(stack)
    );
    match outcome {
        PreviewOutcome::Changes(changes) if changes.is_empty() => {
            out.push_str(&format!(
                "Commit `{short}` would not change the stack: its change set has no resource changes.\n"
            ));
        }
        PreviewOutcome::Changes(changes) => {
            out.push_str(&format!(
                "Commit `{short}` would make {} resource change(s):\n\n| Action | Logical ID | Type | Replacement |\n|---|---|---|---|\n",
                changes.len()
            ));
            for change in changes.iter().take(MAX_ROWS) {
                out.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    cell(&change.action),
                    cell(&change.logical_id),
                    cell(&change.resource_type),
                    change.replacement.as_deref().map(cell).unwrap_or_default()
                ));
            }
            if changes.len() > MAX_ROWS {
                out.push_str(&format!(
                    "\n…and {} more (the first {MAX_ROWS} are listed).\n",
                    changes.len() - MAX_ROWS
                ));
            }
        }
        PreviewOutcome::Validated(what) => {
            out.push_str(&format!(
                "Commit `{short}` is valid. {}\n",
                what.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
        PreviewOutcome::Failed(reason) | PreviewOutcome::Transient(reason) => {
            out.push_str(&format!(
                "Commit `{short}` cannot be deployed as it is:\n\n{}\n",
                quoted(reason)
            ));
        }
    }
    out.push_str(
        "\nA change set was computed and deleted, never executed: nothing changes until this is merged and synced. \
         New pushes to this pull request update this comment.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResourceChange;

    #[test]
    fn changes_are_a_table_whose_cells_cannot_break_it() {
        let body = comment(
            "<!-- m -->",
            "orders",
            "0123456789abcdef0123456789abcdef01234567",
            &PreviewOutcome::Changes(vec![
                ResourceChange {
                    action: "Add".into(),
                    logical_id: "Queue".into(),
                    resource_type: "AWS::SQS::Queue".into(),
                    replacement: None,
                },
                ResourceChange {
                    action: "Modify".into(),
                    logical_id: "Evil|Name\n| x".into(),
                    resource_type: "AWS::S3::Bucket".into(),
                    replacement: Some("True".into()),
                },
            ]),
        );
        assert!(body.starts_with("<!-- m -->\n### gitsync preview of stack `orders`"));
        assert!(body.contains("Commit `0123456789ab` would make 2 resource change(s)"));
        assert!(body.contains("| Add | Queue | AWS::SQS::Queue |  |\n"));
        assert!(body.contains("| Modify | Evil\\|Name \\| x | AWS::S3::Bucket | True |\n"));
        assert!(body.contains("never executed"));
    }

    #[test]
    fn reasons_are_quoted_and_bounded() {
        let reason = format!("```\nbreak out{}", "x".repeat(10_000));
        let body = comment("<!-- m -->", "s", "abc", &PreviewOutcome::Failed(reason));
        assert!(body.contains("cannot be deployed as it is"));
        assert_eq!(body.matches("```").count(), 2, "{body}");
        assert!(body.len() < 5_000);
        let none = comment("<!-- m -->", "s", "abc", &PreviewOutcome::Changes(vec![]));
        assert!(none.contains("would not change the stack"));
    }
}
