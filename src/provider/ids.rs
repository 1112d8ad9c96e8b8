//! Ids read from services, checked before any of them goes into a request path.
//!
//! A service chooses the ids of its resources, and keyward builds URLs from them
//! (`/Users/{id}`, `/users/{id}`, `systemusers({id})`). An id that is a dot segment (`..`
//! turns `DELETE /Users/..` into `DELETE /Users`), or that holds a `/`, `?`, `#`, `\` or a
//! control character, would change which resource a request reaches: such an object is
//! refused when it is read, never written to. Services whose API documents GUID ids (Graph
//! directory objects, Dataverse primary keys) must answer with GUIDs.

/// Why an id read from a service is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("its id is empty")]
    Empty,
    #[error("its id `{0}` is a dot segment, which would change the request path")]
    DotSegment(String),
    #[error("its id `{id}` holds {what}, which could change the request path")]
    Unsafe { id: String, what: &'static str },
    #[error("its id `{0}` is not a GUID, as the API's ids are")]
    NotGuid(String),
}

/// The id as it may be shown: control characters escaped, at most 80 characters.
fn shown(id: &str) -> String {
    let mut s: String = id.chars().take(80).flat_map(char::escape_debug).collect();
    if id.chars().count() > 80 {
        s.push('…');
    }
    s
}

/// `id` is safe as one path segment of a request URL.
pub fn path_segment(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.trim() == "." || id.trim() == ".." {
        return Err(IdError::DotSegment(shown(id)));
    }
    let what = id.chars().find_map(|c| match c {
        '/' => Some("a `/`"),
        '\\' => Some("a `\\`"),
        '?' => Some("a `?`"),
        '#' => Some("a `#`"),
        c if c.is_control() => Some("a control character"),
        _ => None,
    });
    match what {
        Some(what) => Err(IdError::Unsafe { id: shown(id), what }),
        None => Ok(()),
    }
}

/// `id` is a GUID (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hexadecimal digits).
pub fn guid(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    let b = id.as_bytes();
    let ok = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    if ok { Ok(()) } else { Err(IdError::NotGuid(shown(id))) }
}

/// The first id that appears twice (compared without case, as GUIDs are), shown safely.
pub fn first_duplicate<'a>(ids: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter().find(|id| !seen.insert(id.to_lowercase())).map(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_would_change_a_path_are_refused() {
        for bad in ["", ".", "..", " .. ", "a/b", "../x", "a?b", "a#b", "a\\b", "a\nb", "a\u{1b}[2Jb", "\u{7f}"] {
            assert!(path_segment(bad).is_err(), "{bad:?}");
        }
        for good in ["2819c223-7f76-453a-919d-413861904646", "u1", "a.b", "...", "user@example.com", "a b", "é"] {
            assert_eq!(path_segment(good), Ok(()), "{good:?}");
        }
        assert_eq!(
            path_segment("..").unwrap_err().to_string(),
            "its id `..` is a dot segment, which would change the request path"
        );
        assert_eq!(
            path_segment("a\u{1b}b").unwrap_err().to_string(),
            "its id `a\\u{1b}b` holds a control character, which could change the request path"
        );
    }

    #[test]
    fn guids_are_checked_for_shape() {
        assert_eq!(guid("2819c223-7f76-453a-919D-413861904646"), Ok(()));
        for bad in [
            "",
            "1",
            "..",
            "2819c223-7f76-453a-919d-41386190464",
            "2819c223-7f76-453a-919d-4138619046460",
            "2819c223x7f76-453a-919d-413861904646",
            "2819c223-7f76-453a-919d-41386190464g",
            "2819c223-7f76-453a-919d-41386190464/",
        ] {
            assert!(guid(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn duplicates_are_found_without_case() {
        assert_eq!(first_duplicate(["a", "b", "c"]), None);
        assert_eq!(first_duplicate(["a", "b", "A"]), Some("A".to_string()));
    }
}
