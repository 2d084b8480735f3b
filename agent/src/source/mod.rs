//! Sources: Git repositories fetched into artifacts that consumers receive by message.
