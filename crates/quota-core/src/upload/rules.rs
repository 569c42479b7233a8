//! Upload limits per file kind and per endpoint.

use core::time::Duration;
use std::collections::BTreeMap;

use super::{ByteSize, FileKind, UploadRefusal};

/// Room left in a request body for multipart framing (boundaries and part
/// headers) and ordinary form fields: 64 KiB.
///
/// Unless configured otherwise, the largest body an endpoint accepts is its
/// largest per-file limit plus this slack: a request carries one file of the
/// largest kind plus its form fields. See [`UploadRules::max_body`].
pub const MULTIPART_SLACK: u64 = 64 * 1024;

/// What happens to an audio or video file whose duration cannot be read from
/// its headers.
///
/// The default is [`Allow`](Self::Allow): the size limit still applies and, at
/// the seed's sizes, bounds the duration for every common codec (20 MiB of
/// Opus at 6 kbit/s lasts under 8 hours, under the 600-minute limit). Many
/// valid files carry no readable duration in their first bytes (MP3 without a
/// Xing header, WebM, MPEG-TS), so refusing them would refuse ordinary uploads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum UnknownDuration {
    /// Admit the file; its size limit still applies.
    #[default]
    Allow,
    /// Refuse the file with [`UploadRefusal::DurationUnknown`] (HTTP 422).
    Refuse,
}

/// The upload rules: the largest file of each kind, per endpoint overrides,
/// the longest audio or video, and the largest request body.
///
/// Sizes are [`ByteSize`]s: "MB" means MiB (1,048,576 bytes) throughout.
///
/// ```
/// use std::time::Duration;
/// use quota_core::upload::{FileKind, UploadRules};
///
/// let rules = UploadRules::seed();
/// assert_eq!(rules.max_size("txt2img", FileKind::Image), 10 * 1024 * 1024);
/// assert_eq!(rules.max_size("aud2video", FileKind::Audio), 20 * 1024 * 1024);
/// assert!(rules.check_size("aud2video", FileKind::Audio, 15 << 20).is_ok());
/// assert!(rules.check_size("aud2txt", FileKind::Audio, 15 << 20).is_err());
/// assert!(rules.check_duration(FileKind::Video, Duration::from_secs(600 * 60)).is_ok());
/// ```
///
/// In TOML (every field is optional; a missing one keeps the seed's value,
/// and a given `endpoints` table replaces the seed's):
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use quota_core::upload::{FileKind, UploadRules};
/// let rules: UploadRules = toml::from_str(r#"
///     image = "10MiB"
///     video = 52428800            # bytes
///     max_duration_secs = 36000   # 600 minutes
///     unknown_duration = "refuse"
///     [endpoints.aud2video]
///     audio = "20MB"
///     [endpoints."prompt/*"]
///     other = "64KiB"
/// "#).unwrap();
/// assert_eq!(rules.max_size("img2video", FileKind::Video), 50 << 20);
/// assert_eq!(rules.max_size("prompt/enhance", FileKind::Other), 64 << 10);
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct UploadRules {
    /// The largest image.
    pub image: ByteSize,
    /// The largest audio file.
    pub audio: ByteSize,
    /// The largest video file.
    pub video: ByteSize,
    /// The largest part of any other kind (form fields, JSON bodies, unknown files).
    pub other: ByteSize,
    /// The largest request body on every endpoint without its own; `None`
    /// means "the endpoint's largest file limit plus [`MULTIPART_SLACK`]".
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub max_body: Option<ByteSize>,
    /// The longest audio or video file. Configured in whole seconds as
    /// `max_duration_secs`.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "max_duration_secs", with = "duration_secs")
    )]
    pub max_duration: Duration,
    /// What to do with audio or video whose duration cannot be read.
    pub unknown_duration: UnknownDuration,
    /// Per-endpoint overrides, by endpoint name (`aud2video`) or by pattern
    /// (`prompt/*` matches every endpoint under `prompt/`). An exact name wins
    /// over a pattern; among patterns the longest prefix wins.
    pub endpoints: BTreeMap<String, EndpointUploads>,
}

/// The limits one endpoint sets differently from the defaults; a `None`
/// field keeps the default.
///
/// ```
/// use quota_core::upload::{ByteSize, EndpointUploads, FileKind};
/// let overrides = EndpointUploads::new().with_limit(FileKind::Audio, ByteSize::mib(20));
/// assert_eq!(overrides.limit(FileKind::Audio), Some(ByteSize::mib(20)));
/// assert_eq!(overrides.limit(FileKind::Video), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct EndpointUploads {
    /// The largest image.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub image: Option<ByteSize>,
    /// The largest audio file.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub audio: Option<ByteSize>,
    /// The largest video file.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub video: Option<ByteSize>,
    /// The largest part of any other kind.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub other: Option<ByteSize>,
    /// The largest request body.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub max_body: Option<ByteSize>,
}

impl EndpointUploads {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the largest file of `kind`.
    #[must_use]
    pub fn with_limit(mut self, kind: FileKind, size: ByteSize) -> Self {
        *self.slot(kind) = Some(size);
        self
    }

    /// Sets the largest request body.
    #[must_use]
    pub fn with_max_body(mut self, size: ByteSize) -> Self {
        self.max_body = Some(size);
        self
    }

    /// The override for `kind`, if any.
    pub fn limit(&self, kind: FileKind) -> Option<ByteSize> {
        match kind {
            FileKind::Image => self.image,
            FileKind::Audio => self.audio,
            FileKind::Video => self.video,
            FileKind::Other => self.other,
        }
    }

    fn slot(&mut self, kind: FileKind) -> &mut Option<ByteSize> {
        match kind {
            FileKind::Image => &mut self.image,
            FileKind::Audio => &mut self.audio,
            FileKind::Video => &mut self.video,
            FileKind::Other => &mut self.other,
        }
    }
}

impl Default for UploadRules {
    /// The seed's rules, [`UploadRules::seed`].
    fn default() -> Self {
        Self::seed()
    }
}

impl UploadRules {
    /// The source document's rules: images, audio and video up to 10 MiB,
    /// audio up to 20 MiB on `aud2video`, audio and video up to 600 minutes.
    /// Other parts (form fields, JSON bodies, files of no known kind) get
    /// 10 MiB too, the largest default; unreadable durations are allowed
    /// ([`UnknownDuration::Allow`]); the body limit is derived
    /// ([`MULTIPART_SLACK`]).
    pub fn seed() -> Self {
        let mut endpoints = BTreeMap::new();
        endpoints.insert(
            "aud2video".to_owned(),
            EndpointUploads::new().with_limit(FileKind::Audio, ByteSize::mib(20)),
        );
        UploadRules {
            image: ByteSize::mib(10),
            audio: ByteSize::mib(10),
            video: ByteSize::mib(10),
            other: ByteSize::mib(10),
            max_body: None,
            max_duration: Duration::from_secs(600 * 60),
            unknown_duration: UnknownDuration::Allow,
            endpoints,
        }
    }

    /// Sets the default largest file of `kind`.
    #[must_use]
    pub fn with_limit(mut self, kind: FileKind, size: ByteSize) -> Self {
        match kind {
            FileKind::Image => self.image = size,
            FileKind::Audio => self.audio = size,
            FileKind::Video => self.video = size,
            FileKind::Other => self.other = size,
        }
        self
    }

    /// Sets the longest audio or video.
    #[must_use]
    pub fn with_max_duration(mut self, max: Duration) -> Self {
        self.max_duration = max;
        self
    }

    /// Sets what happens to audio or video whose duration cannot be read.
    #[must_use]
    pub fn with_unknown_duration(mut self, policy: UnknownDuration) -> Self {
        self.unknown_duration = policy;
        self
    }

    /// Adds (or replaces) the overrides of an endpoint or pattern (`prompt/*`).
    #[must_use]
    pub fn with_endpoint(
        mut self,
        endpoint: impl Into<String>,
        overrides: EndpointUploads,
    ) -> Self {
        self.endpoints.insert(endpoint.into(), overrides);
        self
    }

    /// The default largest file of `kind`, before endpoint overrides.
    pub fn default_limit(&self, kind: FileKind) -> ByteSize {
        match kind {
            FileKind::Image => self.image,
            FileKind::Audio => self.audio,
            FileKind::Video => self.video,
            FileKind::Other => self.other,
        }
    }

    /// The overrides that apply to `endpoint`: its own entry, else the
    /// longest `prefix/*` pattern that matches it.
    pub fn overrides(&self, endpoint: &str) -> Option<&EndpointUploads> {
        if let Some(own) = self.endpoints.get(endpoint) {
            return Some(own);
        }
        self.endpoints
            .iter()
            .filter_map(|(pattern, o)| Some((pattern.strip_suffix('*')?, o)))
            .filter(|(prefix, _)| prefix.ends_with('/') && endpoint.starts_with(prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, o)| o)
    }

    /// The largest file of `kind` that `endpoint` accepts, in bytes.
    pub fn max_size(&self, endpoint: &str, kind: FileKind) -> u64 {
        self.overrides(endpoint)
            .and_then(|o| o.limit(kind))
            .unwrap_or_else(|| self.default_limit(kind))
            .bytes()
    }

    /// The largest request body `endpoint` accepts, in bytes: what a
    /// `Content-Length` precheck and a streaming cut-off compare against.
    ///
    /// The endpoint's own `max_body`, else the global one, else the largest
    /// per-file limit of the endpoint (over all kinds) plus
    /// [`MULTIPART_SLACK`]. A multipart request that carries several large
    /// files can therefore be refused as a whole although each file is within
    /// its limit; configure `max_body` where an endpoint takes several files.
    pub fn max_body(&self, endpoint: &str) -> u64 {
        let configured = self
            .overrides(endpoint)
            .and_then(|o| o.max_body)
            .or(self.max_body);
        match configured {
            Some(size) => size.bytes(),
            None => FileKind::ALL
                .iter()
                .map(|&kind| self.max_size(endpoint, kind))
                .max()
                .unwrap_or(0)
                .saturating_add(MULTIPART_SLACK),
        }
    }

    /// Of [`max_body`](Self::max_body), the bytes allowed for the multipart
    /// form around the file: [`MULTIPART_SLACK`] when the body's limit is
    /// the largest file limit's, 0 when `max_body` is configured.
    pub fn multipart_allowance(&self, endpoint: &str) -> u64 {
        let configured = self
            .overrides(endpoint)
            .and_then(|o| o.max_body)
            .or(self.max_body);
        if configured.is_some() {
            0
        } else {
            MULTIPART_SLACK
        }
    }

    /// Checks one file of `size` bytes and `kind` sent to `endpoint`. A file
    /// exactly at the limit is admitted.
    pub fn check_size(
        &self,
        endpoint: &str,
        kind: FileKind,
        size: u64,
    ) -> Result<(), UploadRefusal> {
        let limit = self.max_size(endpoint, kind);
        if size <= limit {
            Ok(())
        } else {
            Err(UploadRefusal::TooLarge {
                endpoint: endpoint.to_owned(),
                kind,
                limit_bytes: limit,
                size,
            })
        }
    }

    /// Checks a whole request body of `size` bytes (declared or read so far)
    /// against [`max_body`](Self::max_body).
    pub fn check_body_size(&self, endpoint: &str, size: u64) -> Result<(), UploadRefusal> {
        let limit = self.max_body(endpoint);
        if size <= limit {
            Ok(())
        } else {
            Err(UploadRefusal::BodyTooLarge {
                endpoint: endpoint.to_owned(),
                limit_bytes: limit,
                multipart_allowance: self.multipart_allowance(endpoint),
                size,
            })
        }
    }

    /// Checks the duration of a file of `kind`. Only audio and video are
    /// limited; a duration exactly at the limit is admitted.
    pub fn check_duration(&self, kind: FileKind, duration: Duration) -> Result<(), UploadRefusal> {
        if kind.is_timed() && duration > self.max_duration {
            Err(UploadRefusal::TooLong {
                kind,
                limit: self.max_duration,
                duration,
            })
        } else {
            Ok(())
        }
    }

    /// Decides a file of `kind` whose duration could not be read, by
    /// [`unknown_duration`](Self::unknown_duration). Images and other files
    /// are always admitted.
    pub fn check_unknown_duration(&self, kind: FileKind) -> Result<(), UploadRefusal> {
        match self.unknown_duration {
            UnknownDuration::Refuse if kind.is_timed() => Err(UploadRefusal::DurationUnknown {
                kind,
                limit: self.max_duration,
            }),
            _ => Ok(()),
        }
    }
}

/// `Duration` as whole seconds in configuration; a fraction is rounded up.
#[cfg(feature = "serde")]
mod duration_secs {
    use core::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
        s.serialize_u64(secs)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let secs: u64 = serde::Deserialize::deserialize(d)?;
        Ok(Duration::from_secs(secs))
    }
}
