//! A `multipart/form-data` body (RFC 7578), as a client sends files and
//! fields to an upload endpoint (`quota call -F name=value -F file=@PATH`).
//!
//! ```
//! use quota_core::client::Form;
//!
//! let mut form = Form::new("b0undary");
//! form.field("prompt", b"a cat");
//! form.file("image", "cat.png", b"\x89PNG...");
//! let (content_type, body) = form.finish();
//! assert_eq!(content_type, "multipart/form-data; boundary=b0undary");
//! let text = String::from_utf8_lossy(&body);
//! assert!(text.starts_with("--b0undary\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\na cat\r\n"));
//! assert!(text.contains("name=\"image\"; filename=\"cat.png\"\r\nContent-Type: application/octet-stream\r\n\r\n"));
//! assert!(text.ends_with("\r\n--b0undary--\r\n"));
//! ```

/// A form being written: fields and files, then [`Form::finish`].
#[derive(Clone, Debug)]
pub struct Form {
    boundary: String,
    body: Vec<u8>,
}

impl Form {
    /// An empty form whose parts are separated by `boundary` (which must not
    /// occur in any part: a random one, e.g. 32 hex digits, does not).
    pub fn new(boundary: &str) -> Self {
        Form {
            boundary: boundary.to_owned(),
            body: Vec::new(),
        }
    }

    /// Adds a field `name` with `value`.
    pub fn field(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.part(&format!("form-data; name=\"{name}\"\r\n"), value)
    }

    /// Adds a file `file_name` as the field `name`
    /// (`application/octet-stream`: the gateway decides a file's kind by its
    /// bytes).
    pub fn file(&mut self, name: &str, file_name: &str, bytes: &[u8]) -> &mut Self {
        let head = format!(
            "form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n"
        );
        self.part(&head, bytes)
    }

    fn part(&mut self, disposition: &str, bytes: &[u8]) -> &mut Self {
        let head = format!(
            "--{}\r\nContent-Disposition: {disposition}\r\n",
            self.boundary
        );
        self.body.extend_from_slice(head.as_bytes());
        self.body.extend_from_slice(bytes);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    /// The `Content-Type` (with the boundary) and the body.
    pub fn finish(mut self) -> (String, Vec<u8>) {
        let end = format!("--{}--\r\n", self.boundary);
        self.body.extend_from_slice(end.as_bytes());
        let content_type = format!("multipart/form-data; boundary={}", self.boundary);
        (content_type, self.body)
    }
}
