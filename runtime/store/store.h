// Store: where run history and datasets live. One interface, several backends:
// file:// (the embedded default, file_store.h); az:// and s3:// come later.
//
// Keys are '/'-separated relative paths ("mnist/run_1/outputs/model.pt"), never
// with a leading '/' or a ".." segment. Transfers stream from and to local files;
// nothing requires a whole object in memory except the *Bytes calls. A reader of a
// key sees either the previous object or the complete new one, never half. Every
// call may be made from several threads at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/cancel.h"
#include "base/clock.h"
#include "base/env.h"
#include "base/status.h"

namespace trainrun {

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  WallTime modified{};
  std::string etag;  // changes whenever the content may have changed
  std::string md5;   // of the whole object, raw bytes; "" when the store has none
};

class Store {
 public:
  virtual ~Store() = default;

  // The store's address for messages: no credentials, ever.
  virtual std::string Uri() const = 0;

  // Uploads the local file `local_path` as `key`, replacing what was there.
  virtual Status PutFile(const std::string& key, const std::string& local_path) = 0;
  virtual Status PutBytes(const std::string& key, std::string_view data) = 0;

  // Writes `data` as `key` only if there is no object `key`, atomically: of any
  // number of callers at once, on any hosts, at most one succeeds; the others get
  // kAlreadyExists (naming the store and the key) and change nothing. How each store
  // makes it exclusive is in its header (file://: a hard link; az://, s3://: a
  // conditional write, or claim objects where the server ignores conditions).
  // `data` must fit in one request.
  virtual Status CreateBytes(const std::string& key, std::string_view data) = 0;

  // Downloads `key` to `local_path` (parent folders created, written atomically).
  // kNotFound when there is no such object.
  virtual Status GetFile(const std::string& key, const std::string& local_path) = 0;

  // GetFile for an object whose size and ETag a List or Stat just gave: stores may
  // save a request with them. The object must still match (else an error).
  virtual Status GetListedFile(const ObjectInfo& object, const std::string& local_path) {
    return GetFile(object.key, local_path);
  }

  // `length` bytes from `offset` (to the end when not given). An offset at or past
  // the end gives "". kNotFound when there is no such object.
  virtual Result<std::string> GetBytes(const std::string& key, uint64_t offset = 0,
                                       std::optional<uint64_t> length = std::nullopt) = 0;

  // kNotFound when there is no such object.
  virtual Result<ObjectInfo> Stat(const std::string& key) = 0;

  // Every object whose key starts with `prefix`, recursively, sorted by key.
  virtual Result<std::vector<ObjectInfo>> List(const std::string& prefix) = 0;

  // One level under `prefix` (which ends with '/' or is ""): child "folders" with a
  // trailing '/', and objects, as names relative to `prefix`; sorted.
  virtual Result<std::vector<std::string>> ListChildren(const std::string& prefix) = 0;

  // Removes an object; one that does not exist is not an error.
  virtual Status Delete(const std::string& key) = 0;

  // Bytes moved by this store's transfers are added to *counter as they move, for
  // progress bars (retried bytes count again). Null stops it. Stores that cannot
  // tell ignore it. Set it before transfers start.
  virtual void SetByteCounter(std::atomic<uint64_t>* counter) { (void)counter; }

  // Requests that fail for a transient reason are retried, but none starts after
  // `deadline` (none when unset): a finalize that must end by a time sets it. Safe
  // from any thread; affects calls already in progress.
  virtual void SetRetryDeadline(std::optional<TimePoint> deadline) { (void)deadline; }

  // Transfers of this store (those in flight included) end with kCanceled soon
  // after `cancel` is canceled, and no retry starts after: Preparing sets it on the
  // data's stores so a SIGTERM stops a download. Not owned; it must outlive the
  // store's calls; null: none. Stores whose calls are short ignore it.
  virtual void SetCancel(const CancelToken* cancel) { (void)cancel; }
};

// Checks a key: relative, '/'-separated, no empty, "." or ".." segments.
Status ValidateKey(const std::string& key);

// The key prefix the path part of `uri` names: trailing '/' removed, "" for none,
// else a valid key. Errors name the URI, its secrets redacted.
Result<std::string> KeyPrefixOf(const std::string& uri, std::string path);

// Whether the URI names an object store (az://, s3://, http(s)://) rather than a path.
bool IsObjectStoreUri(const std::string& uri);

// The embedded default history root: $XDG_DATA_HOME/trainrun/history, else
// ~/.local/share/trainrun/history.
std::string DefaultHistoryUri();

}  // namespace trainrun
