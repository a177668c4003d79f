//! Dockerfile frontend: text plus build options in, LLB and an image config out. No I/O.
