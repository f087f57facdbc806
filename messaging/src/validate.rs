//! Input rules of the messaging store: usernames, passwords, profile fields, titles, message
//! text, attachment and idempotency keys. Pure functions, checked before anything is stored.
//!
//! Lengths count Unicode scalar values (`char`s), not bytes, so "4000 characters" means what a
//! person would count (roughly).

use crate::error::StoreError;

/// Username length, in characters.
pub const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=32;
/// Shortest accepted password, in characters.
pub const PASSWORD_MIN: usize = 8;
/// Longest accepted password (bounds the hashing work one request can cause).
pub const PASSWORD_MAX: usize = 1024;
/// Longest display name, in characters.
pub const DISPLAY_NAME_MAX: usize = 64;
/// Longest bio, in characters.
pub const BIO_MAX: usize = 500;
/// Longest file id (avatar, attachment).
pub const FILE_ID_MAX: usize = 128;
/// Longest group title, in characters.
pub const TITLE_MAX: usize = 100;
/// Longest message text, in characters (after trimming).
pub const MESSAGE_MAX: usize = 4000;
/// Most attachments on one message.
pub const ATTACHMENTS_MAX: usize = 16;
/// Longest client idempotency key.
pub const CLIENT_KEY_MAX: usize = 64;
/// Longest file name, in bytes (the common file-system limit).
pub const FILE_NAME_MAX: usize = 255;

/// Checks a username and returns its lookup key (lowercase). Case is kept for display; two
/// names that differ only in case are the same account.
pub fn username_key(name: &str) -> Result<String, StoreError> {
    let ok = USERNAME_LEN.contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(StoreError::InvalidUsername)
    }
}

pub fn password(p: &str) -> Result<(), StoreError> {
    let n = p.chars().count();
    if (PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
        Ok(())
    } else {
        Err(StoreError::InvalidPassword)
    }
}

fn invalid(field: &'static str, reason: &'static str) -> StoreError {
    StoreError::InvalidInput { field, reason }
}

/// A trimmed, single-line, non-empty name of at most `max` characters (display name, title).
fn line(field: &'static str, s: &str, max: usize) -> Result<String, StoreError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(invalid(field, "empty"));
    }
    if s.chars().count() > max {
        return Err(invalid(field, "too long"));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(field, "control characters"));
    }
    Ok(s.to_owned())
}

pub fn display_name(s: &str) -> Result<String, StoreError> {
    line("display_name", s, DISPLAY_NAME_MAX)
}

pub fn title(s: &str) -> Result<String, StoreError> {
    line("title", s, TITLE_MAX)
}

/// A trimmed bio; may be empty; newlines and tabs allowed, other control characters not.
pub fn bio(s: &str) -> Result<String, StoreError> {
    let s = s.trim();
    if s.chars().count() > BIO_MAX {
        return Err(invalid("bio", "too long"));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid("bio", "control characters"));
    }
    Ok(s.to_owned())
}

/// A file id as issued by the file store: 1..=128 of `A-Z a-z 0-9 _ . : -`.
pub fn file_id(field: &'static str, s: &str) -> Result<(), StoreError> {
    if s.is_empty() || s.len() > FILE_ID_MAX {
        return Err(invalid(field, "must be 1 to 128 characters"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
    {
        return Err(invalid(field, "unexpected characters"));
    }
    Ok(())
}

/// A client idempotency key: 1..=64 printable ASCII characters.
pub fn client_key(s: &str) -> Result<(), StoreError> {
    if s.is_empty() || s.len() > CLIENT_KEY_MAX || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "client_key",
            "must be 1 to 64 printable ASCII characters",
        ));
    }
    Ok(())
}

/// Message text, trimmed. Empty is allowed only when `may_be_empty` (a message with
/// attachments); the caller then stores `None`.
pub fn message_text(s: &str, may_be_empty: bool) -> Result<Option<String>, StoreError> {
    let s = s.trim();
    if s.is_empty() {
        return if may_be_empty {
            Ok(None)
        } else {
            Err(StoreError::EmptyMessage)
        };
    }
    if s.chars().count() > MESSAGE_MAX {
        return Err(StoreError::MessageTooLong { max: MESSAGE_MAX });
    }
    if s.contains('\0') {
        return Err(invalid("text", "NUL characters"));
    }
    Ok(Some(s.to_owned()))
}

pub fn attachments(ids: &[String]) -> Result<(), StoreError> {
    if ids.len() > ATTACHMENTS_MAX {
        return Err(invalid("attachments", "too many"));
    }
    ids.iter().try_for_each(|id| file_id("attachments", id))
}

/// A file name as a client gave it (shown to people and offered on download, never used as a
/// path): 1..=255 bytes after trimming, no path separators, no control characters, not `.` or
/// `..`. Refused rather than cleaned up, so a client sees what the server will call the file.
pub fn file_name(name: &str) -> Result<String, StoreError> {
    let name = name.trim();
    if name.is_empty() || name.len() > FILE_NAME_MAX {
        return Err(invalid("name", "a file name is 1 to 255 bytes"));
    }
    if name == "." || name == ".." || name.contains(['/', '\\']) {
        return Err(invalid("name", "a file name cannot be a path"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "a file name cannot contain control characters",
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No text that reaches a database column may hold a NUL (Postgres refuses it).
    #[test]
    fn nul_characters_are_refused_in_every_stored_text() {
        let nul = "a\0b";
        assert!(message_text(nul, false).is_err());
        assert!(message_text(nul, true).is_err());
        assert!(display_name(nul).is_err());
        assert!(title(nul).is_err());
        assert!(bio(nul).is_err());
        assert!(file_name(nul).is_err());
        assert!(file_id("id", nul).is_err());
        assert!(client_key(nul).is_err());
        assert!(username_key("ali\0ce").is_err());
        assert_eq!(
            message_text(" hi\n ", false).unwrap().as_deref(),
            Some("hi")
        );
    }

    #[test]
    fn file_names() {
        assert_eq!(file_name(" clip.webm ").unwrap(), "clip.webm");
        assert_eq!(file_name("отпуск 2026.jpg").unwrap(), "отпуск 2026.jpg");
        assert_eq!(file_name("..hidden").unwrap(), "..hidden");
        for bad in [
            "",
            "   ",
            ".",
            "..",
            "../../etc/passwd",
            "a/b",
            "..\\..\\win.ini",
            "a\0b",
            "line\nbreak",
            &"x".repeat(256),
        ] {
            assert!(file_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn usernames() {
        assert_eq!(username_key("Alice_1.x-y").unwrap(), "alice_1.x-y");
        for bad in [
            "ab",
            "",
            "a b c",
            "élodie",
            "x".repeat(33).as_str(),
            "al/ice",
        ] {
            assert!(matches!(
                username_key(bad),
                Err(StoreError::InvalidUsername)
            ));
        }
        assert!(username_key(&"x".repeat(32)).is_ok());
    }

    #[test]
    fn passwords_count_characters() {
        assert!(password("1234567").is_err());
        assert!(password("12345678").is_ok());
        assert!(password("ééééééé").is_err(), "7 characters, 14 bytes");
        assert!(password(&"p".repeat(PASSWORD_MAX + 1)).is_err());
    }

    #[test]
    fn message_text_rules() {
        assert!(matches!(
            message_text("  \n ", false),
            Err(StoreError::EmptyMessage)
        ));
        assert_eq!(message_text("  \n ", true).unwrap(), None);
        assert_eq!(message_text(" hi ", false).unwrap().unwrap(), "hi");
        let max = "é".repeat(MESSAGE_MAX);
        assert!(message_text(&format!("  {max}  "), false).is_ok());
        assert!(matches!(
            message_text(&format!("{max}x"), false),
            Err(StoreError::MessageTooLong { .. })
        ));
    }

    #[test]
    fn names_titles_ids() {
        assert_eq!(display_name("  Bob ").unwrap(), "Bob");
        assert!(display_name(" ").is_err());
        assert!(display_name("a\u{7}b").is_err());
        assert!(title(&"t".repeat(TITLE_MAX + 1)).is_err());
        assert!(bio("line one\nline two").is_ok());
        assert!(bio(&"b".repeat(BIO_MAX + 1)).is_err());
        assert!(file_id("avatar", "f_01:abc-9.png").is_ok());
        assert!(file_id("avatar", "../etc/passwd").is_err());
        assert!(file_id("avatar", "").is_err());
        assert!(client_key("k-1").is_ok());
        assert!(client_key("with space").is_err());
        assert!(attachments(&vec!["a".to_owned(); ATTACHMENTS_MAX + 1]).is_err());
    }
}
