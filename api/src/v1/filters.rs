//! Query filters the request list and the request metrics share: a time window over one of a
//! request's timestamps (`created_from`/`created_to`, `finished_from`/`finished_to`) and the
//! error it failed with (`error_origin`, `error_type`).

use crate::error::{ApiError, ApiResult};
use crate::v1::dates::QueryDate;
use crate::v1::validation::check_text;
use chrono::NaiveDateTime;
use common::ErrorOrigin;

/// One end of a time window: the text as given (pagination links repeat it) and the instant it
/// stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeBound {
    pub text: String,
    pub at: NaiveDateTime,
}

/// Which end of the window a parameter sets: a bare date covers its whole day either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowEnd {
    From,
    To,
}

impl TimeBound {
    /// `name=text`, refused with Cachito's message when it is no date or datetime.
    pub fn parse(name: &str, text: &str, end: WindowEnd) -> ApiResult<Self> {
        check_text(name, text)?;
        let date = QueryDate::parse(text).map_err(|_| {
            ApiError::bad_request(format!(
                "'{text}' is not a valid datetime(ISO 8601 format)."
            ))
        })?;
        let at = match end {
            WindowEnd::From => date.start(),
            WindowEnd::To => date.end(),
        };
        Ok(Self {
            text: text.to_string(),
            at,
        })
    }
}

/// A time window (both ends inclusive) and an error origin and type.
#[derive(Clone, Debug)]
pub struct WindowAndError {
    from_param: &'static str,
    to_param: &'static str,
    pub from: Option<TimeBound>,
    pub to: Option<TimeBound>,
    pub error_origin: Option<ErrorOrigin>,
    pub error_type: Option<String>,
}

impl WindowAndError {
    /// The window is set by `from_param` and `to_param`.
    pub fn new(from_param: &'static str, to_param: &'static str) -> Self {
        Self {
            from_param,
            to_param,
            from: None,
            to: None,
            error_origin: None,
            error_type: None,
        }
    }

    /// Reads `key=value` when it is one of these filters; `Ok(false)` leaves any other
    /// parameter to the caller.
    pub fn accept(&mut self, key: &str, value: &str) -> ApiResult<bool> {
        if key == self.from_param {
            self.from = Some(TimeBound::parse(key, value, WindowEnd::From)?);
        } else if key == self.to_param {
            self.to = Some(TimeBound::parse(key, value, WindowEnd::To)?);
        } else if key == "error_origin" {
            self.error_origin = Some(match value.parse::<ErrorOrigin>() {
                Ok(origin) => origin,
                Err(()) => {
                    check_text(key, value)?;
                    return Err(ApiError::bad_request(format!(
                        "'{value}' is not one of ['client', 'server']"
                    )));
                }
            });
        } else if key == "error_type" {
            check_text(key, value)?;
            // as Cachito: an empty type filters nothing
            self.error_type = Some(value.to_string()).filter(|t| !t.is_empty());
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// The filters set, as query pairs for pagination links.
    pub fn link_pairs(&self) -> Vec<(&str, &str)> {
        let mut pairs = Vec::new();
        if let Some(from) = &self.from {
            pairs.push((self.from_param, from.text.as_str()));
        }
        if let Some(to) = &self.to {
            pairs.push((self.to_param, to.text.as_str()));
        }
        if let Some(origin) = self.error_origin {
            pairs.push(("error_origin", origin.as_str()));
        }
        if let Some(error_type) = &self.error_type {
            pairs.push(("error_type", error_type.as_str()));
        }
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_window_and_the_error() {
        let mut filters = WindowAndError::new("finished_from", "finished_to");
        for (key, value) in [
            ("finished_from", "2026-01-01"),
            ("finished_to", "2026-01-31"),
            ("error_origin", "server"),
            ("error_type", "RequestTimeout"),
        ] {
            assert!(filters.accept(key, value).unwrap(), "{key}");
        }
        assert!(!filters.accept("created_from", "2026-01-01").unwrap());
        assert_eq!(
            filters.from.as_ref().unwrap().at.to_string(),
            "2026-01-01 00:00:00"
        );
        assert_eq!(
            filters.to.as_ref().unwrap().at.to_string(),
            "2026-01-31 23:59:59.999999"
        );
        assert_eq!(
            filters.link_pairs(),
            [
                ("finished_from", "2026-01-01"),
                ("finished_to", "2026-01-31"),
                ("error_origin", "server"),
                ("error_type", "RequestTimeout"),
            ]
        );
        filters.accept("error_type", "").unwrap();
        assert_eq!(filters.error_type, None);
    }

    #[test]
    fn refuses_bad_values_in_cachitos_words() {
        let mut filters = WindowAndError::new("created_from", "created_to");
        let message = |key: &str, value: &str, filters: &mut WindowAndError| {
            filters.accept(key, value).unwrap_err().message
        };
        assert_eq!(
            message("created_to", "2011-20-04", &mut filters),
            "'2011-20-04' is not a valid datetime(ISO 8601 format)."
        );
        assert_eq!(
            message("error_origin", "nobody", &mut filters),
            "'nobody' is not one of ['client', 'server']"
        );
        assert_eq!(
            message("created_from", "2011-01-01\0", &mut filters),
            "The \"created_from\" parameter must not contain control characters"
        );
        assert_eq!(
            message("error_type", "x\u{1b}", &mut filters),
            "The \"error_type\" parameter must not contain control characters"
        );
    }
}
