//! Upload rules: the largest file of each kind, the longest audio or video.
//!
//! ```
//! use std::time::Duration;
//! use quota_core::upload::{FileKind, UploadRefusal, UploadRules};
//!
//! let rules = UploadRules::seed();
//! // 1. Decide the kind from the file's first bytes, never from its claimed type.
//! let kind = FileKind::sniff(b"RIFF\x24\0\0\0WAVEfmt ");
//! assert_eq!(kind, FileKind::Audio);
//! // 2. Check its size (as soon as it is known, or while it streams).
//! assert!(rules.check_size("aud2video", kind, 20 * 1024 * 1024).is_ok());
//! // 3. Check its duration, read from its headers.
//! let refusal = rules.check_duration(kind, Duration::from_secs(601 * 60)).unwrap_err();
//! assert_eq!(refusal.status_code(), 422);
//! assert!(matches!(refusal, UploadRefusal::TooLong { .. }));
//! ```
//!
//! This module only decides; it reads nothing. The streaming enforcement
//! (cutting a body at its limit, reading durations from container headers)
//! lives in `quota-transport`'s `upload` module, which calls, in order:
//!
//! 1. [`UploadRules::max_body`] / [`UploadRules::check_body_size`] on the
//!    `Content-Length`, before reading the body, and again on the bytes read;
//! 2. [`FileKind::sniff`] on the first [`SNIFF_LEN`] bytes of each file;
//! 3. [`UploadRules::check_size`] as each file's bytes arrive;
//! 4. [`UploadRules::check_duration`] once a duration is read, or
//!    [`UploadRules::check_unknown_duration`] when none can be.
//!
//! Units: every size is a [`ByteSize`], and "MB" means MiB (1,048,576 bytes).
//! Refusals are [`UploadRefusal`]s: 413 for sizes, 422 for durations.

mod refusal;
mod rules;
mod size;
mod sniff;

pub use refusal::UploadRefusal;
pub use rules::{EndpointUploads, UnknownDuration, UploadRules, MULTIPART_SLACK};
pub use size::{ByteSize, ByteSizeError};
pub use sniff::{FileFormat, FileKind, SNIFF_LEN};
