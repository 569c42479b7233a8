//! Why an upload is refused: data that maps to an HTTP status and a message.

use core::fmt;
use core::time::Duration;

use super::{ByteSize, FileKind};

/// An upload that the [`UploadRules`](super::UploadRules) refuse.
///
/// Too large is HTTP 413, too long (or a duration that must be known but
/// cannot be read) is HTTP 422. The [`Display`](fmt::Display) text, also given
/// by [`message`](Self::message), names the limit and is meant for the JSON
/// `message` of the response.
///
/// ```
/// use quota_core::upload::{FileKind, UploadRules};
/// let rules = UploadRules::seed();
/// let refusal = rules.check_size("aud2video", FileKind::Audio, 30 << 20).unwrap_err();
/// assert_eq!(refusal.status_code(), 413);
/// assert_eq!(refusal.message(), "audio file exceeds the 20 MiB limit for aud2video");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UploadRefusal {
    /// One file is larger than its kind's limit on this endpoint (413).
    #[error("{} exceeds the {} limit for {endpoint}", kind.noun(), ByteSize::bytes_exact(*limit_bytes))]
    TooLarge {
        /// The endpoint the file was sent to.
        endpoint: String,
        /// The kind decided from the file's bytes.
        kind: FileKind,
        /// The largest size allowed, in bytes.
        limit_bytes: u64,
        /// The size seen when the file was refused: its full size, or, while
        /// streaming, the bytes read so far (already more than the limit).
        size: u64,
    },
    /// The request body as a whole is larger than the endpoint allows (413),
    /// from its `Content-Length` or from the bytes read so far.
    #[error("request body exceeds {}", BodyLimit(endpoint, *limit_bytes, *multipart_allowance))]
    BodyTooLarge {
        /// The endpoint the body was sent to.
        endpoint: String,
        /// The largest body allowed, in bytes (see [`UploadRules::max_body`](super::UploadRules::max_body)).
        limit_bytes: u64,
        /// Of `limit_bytes`, what is allowed for the multipart form around
        /// the file ([`UploadRules::multipart_allowance`](super::UploadRules::multipart_allowance)):
        /// 0 when the body's limit is configured.
        multipart_allowance: u64,
        /// The declared `Content-Length`, or the bytes read so far.
        size: u64,
    },
    /// An audio or video file lasts longer than allowed (422).
    #[error("{} lasts {}, over the {} duration limit", kind.noun(), Human(*duration), Human(*limit))]
    TooLong {
        /// Audio or video.
        kind: FileKind,
        /// The longest duration allowed.
        limit: Duration,
        /// The duration the file's headers declare.
        duration: Duration,
    },
    /// The duration of an audio or video file could not be read and the rules
    /// say such files are refused ([`UnknownDuration::Refuse`](super::UnknownDuration::Refuse)) (422).
    #[error("could not read the duration of the {}; the duration limit is {}", kind.noun(), Human(*limit))]
    DurationUnknown {
        /// Audio or video.
        kind: FileKind,
        /// The longest duration allowed.
        limit: Duration,
    },
}

impl UploadRefusal {
    /// The HTTP status: 413 for sizes, 422 for durations.
    pub const fn status_code(&self) -> u16 {
        match self {
            UploadRefusal::TooLarge { .. } | UploadRefusal::BodyTooLarge { .. } => 413,
            UploadRefusal::TooLong { .. } | UploadRefusal::DurationUnknown { .. } => 422,
        }
    }

    /// The human text for the response's JSON `message`; it names the limit.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// A body limit in the policy's words: the configured limit, or the file
/// limit and, apart, the multipart form's allowance.
struct BodyLimit<'a>(&'a str, u64, u64);

impl fmt::Display for BodyLimit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let BodyLimit(endpoint, limit, allowance) = *self;
        match allowance {
            0 => write!(
                f,
                "the {} limit for {endpoint}",
                ByteSize::bytes_exact(limit)
            ),
            _ => write!(
                f,
                "the {} limit for {endpoint} (plus {} for the multipart form around the file)",
                ByteSize::bytes_exact(limit.saturating_sub(allowance)),
                ByteSize::bytes_exact(allowance)
            ),
        }
    }
}

/// A duration the way people say it: `600 minutes`, `90 s`, `36000.001 s`.
struct Human(Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let secs = d.as_secs();
        let nanos = d.subsec_nanos();
        if nanos == 0 && secs % 60 == 0 && secs > 0 {
            let minutes = secs / 60;
            write!(f, "{minutes} minute{}", if minutes == 1 { "" } else { "s" })
        } else if nanos == 0 {
            write!(f, "{secs} s")
        } else if nanos % 1_000_000 == 0 {
            write!(f, "{secs}.{:03} s", nanos / 1_000_000)
        } else {
            write!(f, "{secs}.{nanos:09} s")
        }
    }
}
