//! # media-store: files for GAX
//!
//! Will own file storage: a `BlobStore` with a local-directory backend (the embedded default)
//! and an S3 backend (aws-sdk-s3), file metadata in SQL, streaming uploads with size limits and
//! content sniffing, and HTTP Range reads for video seeking, with access checked against chat
//! and watch-party membership. Nothing is implemented yet (issue 5); the crate exists so the
//! workspace has its final shape.
