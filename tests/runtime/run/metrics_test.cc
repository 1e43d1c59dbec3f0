#include "runtime/run/metrics.h"

#include <cmath>
#include <regex>

#include <gtest/gtest.h>

#include "runtime/run/metrics_plot.h"
#include "runtime/store/file_store.h"
#include "runtime/store/xml.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

using testing::TempDir;

TEST(MetricsFileTest, RankFromName) {
  EXPECT_EQ(MetricsFileName(12), "rank_12.jsonl");
  EXPECT_EQ(RankOfMetricsFile("rank_12.jsonl"), 12);
  EXPECT_EQ(RankOfMetricsFile("rank_0.jsonl"), 0);
  EXPECT_FALSE(RankOfMetricsFile("rank_.jsonl"));
  EXPECT_FALSE(RankOfMetricsFile("rank_-1.jsonl"));
  EXPECT_FALSE(RankOfMetricsFile("rank_1x.jsonl"));
  EXPECT_FALSE(RankOfMetricsFile("rank_1.jsonl.tmp"));
  EXPECT_FALSE(RankOfMetricsFile("notes.txt"));
}

TEST(RunMetricsTest, StatsPerRankAndOverall) {
  RunMetrics m;
  m.AddLines(0,
             "{\"name\":\"loss\",\"value\":2.0,\"step\":0}\n"
             "{\"name\":\"loss\",\"value\":1.0,\"step\":1}\n"
             "{\"name\":\"loss\",\"value\":0.5,\"step\":2}\n"
             "{\"tag\":\"optimizer\",\"value\":\"sgd\"}\n",
             "rank_0.jsonl");
  m.AddLines(1,
             "{\"name\":\"loss\",\"value\":3.0,\"step\":0}\n"
             "{\"name\":\"loss\",\"value\":0.25,\"step\":1}\n",
             "rank_1.jsonl");
  EXPECT_TRUE(m.problems.empty());
  std::optional<MetricStats> r0 = m.Stats("loss", 0);
  ASSERT_TRUE(r0);
  EXPECT_EQ(r0->values, 3u);
  EXPECT_EQ(r0->steps, 3u);
  EXPECT_EQ(r0->latest_step, 2);
  EXPECT_DOUBLE_EQ(r0->latest, 0.5);
  EXPECT_DOUBLE_EQ(r0->min, 0.5);
  EXPECT_DOUBLE_EQ(r0->max, 2.0);
  std::optional<MetricStats> r1 = m.Stats("loss", 1);
  ASSERT_TRUE(r1);
  EXPECT_DOUBLE_EQ(r1->latest, 0.25);
  EXPECT_FALSE(m.Stats("loss", 2));
  EXPECT_FALSE(m.Stats("accuracy", 0));

  std::optional<MetricStats> all = m.Overall("loss");
  ASSERT_TRUE(all);
  EXPECT_EQ(all->values, 5u);
  EXPECT_EQ(all->steps, 3u);  // 0, 1, 2 whatever the rank
  EXPECT_EQ(all->latest_step, 2);
  EXPECT_DOUBLE_EQ(all->latest, 0.5);  // the highest step is rank 0's
  EXPECT_DOUBLE_EQ(all->min, 0.25);
  EXPECT_DOUBLE_EQ(all->max, 3.0);
  EXPECT_EQ(m.tags.at("optimizer"), "sgd");

  nlohmann::json j = m.ToJson();
  EXPECT_EQ(j["metrics"]["loss"]["overall"]["latest"], 0.5);
  EXPECT_EQ(j["metrics"]["loss"]["ranks"]["1"]["steps"], 2);
  EXPECT_EQ(j["tags"]["optimizer"], "sgd");
}

// A metric whose every value is NaN has no range: null in JSON, not 0.
TEST(RunMetricsTest, OnlyNaNValuesHaveNoMinOrMax) {
  RunMetrics m;
  m.AddLines(0, "{\"name\":\"bad\",\"value\":\"NaN\",\"step\":0}\n", "rank_0.jsonl");
  std::optional<MetricStats> bad = m.Overall("bad");
  ASSERT_TRUE(bad);
  EXPECT_TRUE(std::isnan(bad->min));
  EXPECT_TRUE(std::isnan(bad->max));
  EXPECT_TRUE(m.ToJson()["metrics"]["bad"]["overall"]["min"].is_null());
  EXPECT_TRUE(m.ToJson()["metrics"]["bad"]["overall"]["max"].is_null());
}

TEST(RunMetricsTest, UnnumberedStepsTextAndNonFiniteValues) {
  RunMetrics m;
  m.AddLines(0,
             "{\"name\":\"lr\",\"value\":0.1}\n"
             "{\"name\":\"lr\",\"value\":0.01}\n"
             "{\"name\":\"loss\",\"value\":1.5,\"step\":0}\n"
             "{\"name\":\"loss\",\"value\":\"NaN\",\"step\":1}\n"
             "{\"name\":\"phase\",\"value\":\"warm-up\",\"step\":0}\n",
             "rank_0.jsonl");
  std::optional<MetricStats> lr = m.Stats("lr", 0);
  ASSERT_TRUE(lr);
  EXPECT_EQ(lr->latest_step, 1);
  EXPECT_DOUBLE_EQ(lr->latest, 0.01);
  std::optional<MetricStats> loss = m.Stats("loss", 0);
  ASSERT_TRUE(loss);
  EXPECT_TRUE(std::isnan(loss->latest));  // the NaN is the latest...
  EXPECT_DOUBLE_EQ(loss->min, 1.5);       // ...but not in the range
  EXPECT_DOUBLE_EQ(loss->max, 1.5);
  EXPECT_EQ(m.ToJson()["metrics"]["loss"]["overall"]["latest"], "NaN");
  std::optional<MetricStats> phase = m.Stats("phase", 0);
  ASSERT_TRUE(phase);
  EXPECT_EQ(phase->values, 0u);
  EXPECT_EQ(phase->latest_text, "warm-up");
  EXPECT_FALSE(m.ToJson()["metrics"]["phase"]["overall"].contains("min"));
}

TEST(RunMetricsTest, BadLinesAreNamedAndAnUnfinishedLastLineIsSkippedQuietly) {
  RunMetrics m;
  m.AddLines(3,
             "{\"name\":\"loss\",\"value\":1,\"step\":0}\n"
             "garbage\n"
             "{\"value\":1}\n"
             "{\"name\":\"loss\",\"value\":0.5,\"step\":1}\n"
             "{\"name\":\"loss\",\"va",
             "rank_3.jsonl");
  ASSERT_EQ(m.problems.size(), 2u);
  EXPECT_EQ(m.problems[0], "rank_3.jsonl line 2: not a JSON object");
  EXPECT_EQ(m.problems[1], "rank_3.jsonl line 3: has no \"name\" and \"value\"");
  EXPECT_EQ(m.Stats("loss", 3)->values, 2u);
}

TEST(RunMetricsTest, ReadsEveryRanksFileOfARunFromHistory) {
  TempDir dir;
  FileStore store(dir.path());
  RunKey key{"exp", "run1"};
  ASSERT_TRUE(store
                  .PutBytes("exp/run1/metrics/rank_0.jsonl",
                            "{\"name\":\"acc\",\"value\":0.5,\"step\":0}\n")
                  .ok());
  ASSERT_TRUE(store
                  .PutBytes("exp/run1/metrics/rank_1.jsonl",
                            "{\"name\":\"acc\",\"value\":0.7,\"step\":0}\n")
                  .ok());
  ASSERT_TRUE(store.PutBytes("exp/run1/metrics/README", "not a metrics file").ok());
  Result<RunMetrics> m = ReadRunMetrics(&store, key);
  ASSERT_TRUE(m.ok()) << m.status().message();
  ASSERT_EQ(m->metrics.at("acc").size(), 2u);
  EXPECT_DOUBLE_EQ(m->Overall("acc")->max, 0.7);

  Result<RunMetrics> none = ReadRunMetrics(&store, RunKey{"exp", "run2"});
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_TRUE(none->empty());
}

// The points of a path's "d": one per M or L command.
size_t PointsOf(const std::string& d) {
  size_t n = 0;
  for (char c : d) n += (c == 'M' || c == 'L');
  return n;
}

TEST(MetricsPlotTest, OnePathPerRankWithAPointPerValue) {
  RunMetrics m;
  for (int rank = 0; rank < 3; ++rank) {
    std::string lines;
    for (int step = 0; step < 7; ++step) {
      lines += "{\"name\":\"loss\",\"value\":" + std::to_string(1.0 / (step + 1 + rank)) +
               ",\"step\":" + std::to_string(step) + "}\n";
    }
    lines += "{\"name\":\"a<b&c\",\"value\":1,\"step\":0}\n";
    m.AddLines(rank, lines, "f");
  }
  const std::string svg = RenderMetricsSvg(m, "exp / run");
  Result<XmlElement> doc = ParseXml(svg, "the plot");
  ASSERT_TRUE(doc.ok()) << doc.status().message() << "\n" << svg;
  EXPECT_EQ(doc->name, "svg");
  std::vector<const XmlElement*> panels = doc->Children("g");
  ASSERT_EQ(panels.size(), 2u);  // a panel per metric

  std::regex path("<path class=\"series\" data-rank=\"(\\d+)\"[^>]* d=\"([^\"]*)\"");
  std::map<std::string, std::vector<size_t>> per_metric;  // metric -> points per path
  size_t at = 0;
  for (const char* name : {"a&lt;b&amp;c", "loss"}) {
    size_t panel = svg.find(std::string("data-metric=\"") + name + "\"", at);
    ASSERT_NE(panel, std::string::npos) << name;
    size_t end = svg.find("</g>\n</g>", panel);
    std::string text = svg.substr(panel, end - panel);
    for (std::sregex_iterator it(text.begin(), text.end(), path), stop; it != stop; ++it) {
      per_metric[name].push_back(PointsOf((*it)[2]));
    }
    EXPECT_NE(text.find("rank 2"), std::string::npos) << "no legend in " << name;
    at = end;
  }
  EXPECT_EQ(per_metric["loss"], (std::vector<size_t>{7, 7, 7}));
  EXPECT_EQ(per_metric["a&lt;b&amp;c"], (std::vector<size_t>{1, 1, 1}));
}

TEST(MetricsPlotTest, ANonFiniteValueBreaksTheLine) {
  RunMetrics m;
  m.AddLines(0,
             "{\"name\":\"loss\",\"value\":1,\"step\":0}\n"
             "{\"name\":\"loss\",\"value\":\"Infinity\",\"step\":1}\n"
             "{\"name\":\"loss\",\"value\":0.5,\"step\":2}\n"
             "{\"name\":\"loss\",\"value\":0.4,\"step\":3}\n",
             "f");
  const std::string svg = RenderMetricsSvg(m, "t");
  std::smatch match;
  ASSERT_TRUE(std::regex_search(svg, match, std::regex(" d=\"([^\"]*)\"")));
  const std::string d = match[1];
  EXPECT_EQ(std::count(d.begin(), d.end(), 'M'), 2) << d;
  EXPECT_EQ(std::count(d.begin(), d.end(), 'L'), 1) << d;
  EXPECT_TRUE(ParseXml(svg, "plot").ok());
}

}  // namespace
}  // namespace trainrun
