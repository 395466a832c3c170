//! Meta status → Genesys receipt, for messages agents sent: which statuses move a message
//! forward, and how Meta's error codes read for Genesys.
//!
//! Meta does not promise order: statuses arrive late, twice, or `read` without `delivered`
//! (WIRE.md §1.4). A message's status only moves forwards — sent < delivered < read; `failed` is
//! terminal — so a late `delivered` after `read` changes nothing and sends no receipt.

/// Position in the sent < delivered < read order; `failed` ends the line.
fn rank(status: &str) -> Option<u8> {
    match status {
        "accepted" => Some(0),
        "sent" => Some(1),
        "delivered" => Some(2),
        // A played voice note was read.
        "read" | "played" => Some(3),
        "failed" => Some(4),
        _ => None,
    }
}

/// Whether `new` moves a message whose tracked status is `current` forward.
pub fn advances(current: Option<&str>, new: &str) -> bool {
    let Some(new_rank) = rank(new) else {
        return false;
    };
    match current.and_then(rank) {
        None => true,
        Some(4) => false,
        Some(current_rank) => new_rank > current_rank,
    }
}

/// Genesys' receipt status for a Meta status.
pub fn receipt_status(status: &str) -> Option<&'static str> {
    match status {
        "sent" => Some("Sent"),
        "delivered" => Some("Delivered"),
        "read" | "played" => Some("Read"),
        "failed" => Some("Failed"),
        _ => None,
    }
}

pub use wabaflow_schemas::genesys::failure_reason;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_forwards_and_failed_is_terminal() {
        assert!(advances(None, "sent"));
        assert!(advances(Some("sent"), "read"), "read without delivered");
        assert!(!advances(Some("read"), "delivered"), "a late delivered");
        assert!(!advances(Some("delivered"), "delivered"), "a duplicate");
        assert!(advances(Some("delivered"), "failed"));
        assert!(!advances(Some("failed"), "read"));
        assert!(!advances(Some("sent"), "deleted"));
        assert_eq!(failure_reason(Some(131047)), "MessageExpired");
        assert_eq!(failure_reason(Some(132001)), "InvalidMessageStructure");
        assert_eq!(failure_reason(None), "GeneralError");
    }
}
