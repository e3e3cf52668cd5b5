//! weft end-to-end tests
