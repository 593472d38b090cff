//! Hostile input to the api: every bad byte, size and key ends in a 4xx.

mod support;
