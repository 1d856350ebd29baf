//! Field checks shared by every command that takes a key, an owner or a duration.

use crate::error::{Field, LockError, Problem};
use crate::types::Millis;

/// Checks a UTF-8 string field: non-empty, at most `max` bytes, no control characters.
pub(crate) fn text(field: Field, value: &str, max: u32) -> Result<(), LockError> {
    let problem = if value.is_empty() {
        Some(Problem::Empty)
    } else if value.len() > max as usize {
        Some(Problem::TooLong {
            len: value.len() as u64,
            max: u64::from(max),
        })
    } else if value.chars().any(char::is_control) {
        Some(Problem::ControlCharacter)
    } else {
        None
    };
    match problem {
        Some(problem) => Err(LockError::Invalid { field, problem }),
        None => Ok(()),
    }
}

/// Checks that a duration lies in `min..=max`.
pub(crate) fn range(
    field: Field,
    value: Millis,
    min: Millis,
    max: Millis,
) -> Result<(), LockError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(LockError::Invalid {
            field,
            problem: Problem::OutOfRange { value, min, max },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rejects_empty_long_and_control_characters() {
        assert!(text(Field::Key, "a", 4).is_ok());
        assert!(text(Field::Key, "ünï", 5).is_ok());
        let err = |v: &str| match text(Field::Key, v, 4) {
            Err(LockError::Invalid {
                field: Field::Key,
                problem,
            }) => problem,
            other => panic!("expected an invalid key, got {other:?}"),
        };
        assert_eq!(err(""), Problem::Empty);
        assert_eq!(err("abcde"), Problem::TooLong { len: 5, max: 4 });
        assert_eq!(err("a\nb"), Problem::ControlCharacter);
        assert_eq!(err("\u{7f}"), Problem::ControlCharacter);
    }

    #[test]
    fn range_is_inclusive() {
        assert!(range(Field::TtlMs, 1, 1, 10).is_ok());
        assert!(range(Field::TtlMs, 10, 1, 10).is_ok());
        assert!(range(Field::TtlMs, 0, 1, 10).is_err());
        assert!(range(Field::TtlMs, 11, 1, 10).is_err());
    }
}
