// The hashes of base/hashing.h that need no object store to be seen.
#include "base/hashing.h"

#include <gtest/gtest.h>

namespace trainrun {
namespace {

// The published FNV-1a 64-bit test vectors: the same value on every machine and
// every run, which is what the names built from it need.
TEST(Fnv1a64Test, GivesThePublishedValues) {
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ull);
  EXPECT_NE(Fnv1a64("CUDA_VISIBLE_DEVICES=0"), Fnv1a64("CUDA_VISIBLE_DEVICES=1"));
}

}  // namespace
}  // namespace trainrun
