// trainrun's resident memory between phases of `trainrun run` (README "Install", the
// launch table). Internal to the launcher.
#pragma once

namespace trainrun {

// Lets go of the pages of code and read-only data that trainrun and the libraries
// it loaded have mapped so far: every segment of a loaded object that is neither
// writable nor RELRO is madvise(MADV_DONTNEED)'d. Those pages are the files' own,
// unmodified, and stay in the page cache; a phase that needs one again maps it back
// with a minor fault. Each phase of a run (loading the job, preparing, supervising the
// ranks, finalizing) uses mostly code of its own, and the kernel maps 64 KiB around
// each page touched, so without this a run holds the union of every phase's code
// (about 6 MiB of a 9.5 MB portable binary) instead of one phase's. Never fails: a
// segment the kernel refuses stays as it was. Safe at any time, from any thread.
void ReleaseCodePages();

}  // namespace trainrun
