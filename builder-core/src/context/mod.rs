//! The build context: which files a build may read, after `.dockerignore`.
