//! `PartInspector`: the rules applied to one file as its bytes stream.

use core::time::Duration;
use std::sync::Arc;

use quota_core::upload::{FileFormat, FileKind, UploadRefusal, UploadRules, SNIFF_LEN};

use super::duration::{DurationProbe, DurationReader};

/// Checks one file (a multipart part, or a whole non-multipart body) as its
/// bytes arrive: kind by magic number, size per kind and endpoint, duration
/// of audio and video. Keeps at most [`SNIFF_LEN`] bytes plus the duration
/// reader's bounded prefix.
///
/// 1. [`feed`](Self::feed) every chunk in order; stop at the first `Err`.
/// 2. At the end of the file call [`finish`](Self::finish).
///
/// The kind is decided once [`SNIFF_LEN`] bytes have arrived (or at the end
/// of a shorter file); sizes are checked from then on, durations as soon as
/// the header holding them has arrived, or at the end.
///
/// ```
/// use std::sync::Arc;
/// use quota_core::upload::{FileKind, UploadRules};
/// use quota_transport::upload::PartInspector;
///
/// let mut part = PartInspector::new("txt2img", Arc::new(UploadRules::seed()));
/// part.feed(b"\x89PNG\r\n\x1a\n").unwrap();
/// part.feed(&[0; 600]).unwrap();
/// assert_eq!(part.kind(), Some(FileKind::Image));
/// let refusal = part.feed(&vec![0; 10 << 20]).unwrap_err();
/// assert_eq!(refusal.status_code(), 413);
/// ```
#[derive(Debug)]
pub struct PartInspector {
    endpoint: Arc<str>,
    rules: Arc<UploadRules>,
    head: Vec<u8>,
    kind: Option<FileKind>,
    size: u64,
    duration: Option<DurationReader>,
    found: Option<Duration>,
}

impl PartInspector {
    /// Inspects a file sent to `endpoint` under `rules`.
    pub fn new(endpoint: impl Into<Arc<str>>, rules: Arc<UploadRules>) -> Self {
        PartInspector {
            endpoint: endpoint.into(),
            rules,
            head: Vec::with_capacity(SNIFF_LEN),
            kind: None,
            size: 0,
            duration: None,
            found: None,
        }
    }

    /// The kind, once decided.
    pub fn kind(&self) -> Option<FileKind> {
        self.kind
    }

    /// The bytes fed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The duration, once read.
    pub fn duration(&self) -> Option<Duration> {
        self.found
    }

    /// Feeds the next chunk of the file.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), UploadRefusal> {
        self.size = self.size.saturating_add(chunk.len() as u64);
        let probe = match self.kind {
            Some(_) => self.feed_duration(chunk),
            None => {
                let take = (SNIFF_LEN - self.head.len()).min(chunk.len());
                self.head.extend_from_slice(&chunk[..take]);
                if self.head.len() < SNIFF_LEN {
                    return Ok(());
                }
                self.decide_kind();
                let head = std::mem::take(&mut self.head);
                match self.feed_duration(&head) {
                    DurationProbe::NeedMore => self.feed_duration(&chunk[take..]),
                    probe => probe,
                }
            }
        };
        self.check(probe)
    }

    /// Ends the file: decides its kind if still undecided, and its duration
    /// if still unread (applying the rules' `unknown_duration`).
    pub fn finish(&mut self) -> Result<(), UploadRefusal> {
        let mut probe = DurationProbe::NeedMore;
        if self.kind.is_none() {
            self.decide_kind();
            let head = std::mem::take(&mut self.head);
            probe = self.feed_duration(&head);
        }
        if probe == DurationProbe::NeedMore {
            if let (Some(reader), None) = (&mut self.duration, self.found) {
                probe = reader.finish();
            }
        }
        self.check(probe)
    }

    fn decide_kind(&mut self) {
        let format = FileFormat::sniff(&self.head);
        let kind = format.map_or(FileKind::Other, FileFormat::kind);
        self.kind = Some(kind);
        if let (true, Some(format)) = (kind.is_timed(), format) {
            self.duration = Some(DurationReader::for_format(format));
        }
    }

    fn feed_duration(&mut self, bytes: &[u8]) -> DurationProbe {
        match (&mut self.duration, self.found) {
            (Some(reader), None) if !bytes.is_empty() => reader.feed(bytes),
            _ => DurationProbe::NeedMore,
        }
    }

    /// Applies the rules to what is known now.
    fn check(&mut self, probe: DurationProbe) -> Result<(), UploadRefusal> {
        let Some(kind) = self.kind else { return Ok(()) };
        self.rules.check_size(&self.endpoint, kind, self.size)?;
        match probe {
            DurationProbe::Known(d) => {
                self.found = Some(d);
                self.duration = None;
                self.rules.check_duration(kind, d)
            }
            DurationProbe::Unknown => {
                self.duration = None;
                self.rules.check_unknown_duration(kind)
            }
            _ => Ok(()),
        }
    }
}
