// Where a process sits in a run, from the variables torchrun, `aha launch` and Slurm set: the values, the
// first host of Slurm node lists, the config's overrides, and errors that name the variable.
#include "aha/dist/topology.h"

#include <gtest/gtest.h>

#include "../support/error_of.h"
#include "aha/dist/process_group.h"

namespace aha::dist {
namespace {

TEST(DistTopology, NoLauncherVariablesIsOneProcess) {
  const WorldSpec w = resolve_world(RendezvousOptions{}, {{"HOME", "/root"}});
  EXPECT_EQ(w.source, "single");
  EXPECT_EQ(w.world_size, 1);
  EXPECT_EQ(w.rank, 0);
  EXPECT_EQ(w.master_addr, "127.0.0.1");
  EXPECT_EQ(w.master_port, 29500);
}

TEST(DistTopology, TorchrunVariables) {
  const WorldSpec w = resolve_world(RendezvousOptions{}, {{"RANK", "5"},
                                                          {"WORLD_SIZE", "8"},
                                                          {"LOCAL_RANK", "1"},
                                                          {"LOCAL_WORLD_SIZE", "4"},
                                                          {"MASTER_ADDR", "node07"},
                                                          {"MASTER_PORT", "29611"},
                                                          {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                                          {"SLURM_PROCID", "0"},
                                                          {"SLURM_NTASKS", "2"}});
  EXPECT_EQ(w.source,
            "RANK/WORLD_SIZE");  // torchrun's variables win over Slurm's (torchrun in an allocation)
  EXPECT_EQ(w.rank, 5);
  EXPECT_EQ(w.world_size, 8);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_world_size, 4);
  EXPECT_EQ(w.master_addr, "node07");
  EXPECT_EQ(w.master_port, 29611);
  EXPECT_TRUE(w.agent_store);
  EXPECT_FALSE(resolve_world(RendezvousOptions{},
                             {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"TORCHELASTIC_USE_AGENT_STORE", "False"}})
                   .agent_store);
}

TEST(DistTopology, SlurmVariablesAndTheFirstHostOfTheJob) {
  const WorldSpec w = resolve_world(RendezvousOptions{}, {{"SLURM_PROCID", "6"},
                                                          {"SLURM_NTASKS", "8"},
                                                          {"SLURM_LOCALID", "2"},
                                                          {"SLURM_NTASKS_PER_NODE", "4(x2)"},
                                                          {"SLURM_JOB_NODELIST", "gpu[012-013]"}});
  EXPECT_EQ(w.source, "slurm");
  EXPECT_EQ(w.rank, 6);
  EXPECT_EQ(w.world_size, 8);
  EXPECT_EQ(w.local_rank, 2);
  EXPECT_EQ(w.local_world_size, 4);
  EXPECT_EQ(w.master_addr, "gpu012");
  EXPECT_EQ(w.master_port, 29500);
  // SLURM_NODELIST when the job list is absent; MASTER_ADDR/MASTER_PORT win when the batch script sets them.
  EXPECT_EQ(resolve_world(RendezvousOptions{},
                          {{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_NODELIST", "a,b"}})
                .master_addr,
            "a");
  const WorldSpec m = resolve_world(RendezvousOptions{}, {{"SLURM_PROCID", "0"},
                                                          {"SLURM_NTASKS", "2"},
                                                          {"SLURM_JOB_NODELIST", "gpu[1-2]"},
                                                          {"MASTER_ADDR", "10.0.0.5"},
                                                          {"MASTER_PORT", "12345"}});
  EXPECT_EQ(m.master_addr, "10.0.0.5");
  EXPECT_EQ(m.master_port, 12345);
}

TEST(DistTopology, FirstHostOfSlurmNodeLists) {
  EXPECT_EQ(first_slurm_host("node[01-04,07],gpu5"), "node01");
  EXPECT_EQ(first_slurm_host("gpu5,node[01-04]"), "gpu5");
  EXPECT_EQ(first_slurm_host("node[7,3-4]"), "node7");
  EXPECT_EQ(first_slurm_host("rack[1-2]-n[3-4]"), "rack1-n3");
  EXPECT_EQ(first_slurm_host("a-[009-010]-ib"), "a-009-ib");
  EXPECT_EQ(first_slurm_host("single"), "single");
  EXPECT_NE(test::error_of([] { first_slurm_host("node[01-04"); }).find("node[01-04"), std::string::npos);
  EXPECT_NE(test::error_of([] { first_slurm_host("node[]"); }).find("empty range"), std::string::npos);
}

TEST(DistTopology, TheConfigOverridesTheRendezvousAddress) {
  RendezvousOptions d;
  d.master_addr = "head";
  d.master_port = 40000;
  d.backend = "gloo";
  d.timeout_s = 7;
  const WorldSpec w =
      resolve_world(d, {{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "x"}, {"MASTER_PORT", "1"}});
  EXPECT_EQ(w.master_addr, "head");
  EXPECT_EQ(w.master_port, 40000);
  EXPECT_EQ(w.backend, "gloo");
  EXPECT_EQ(w.timeout_s, 7);
}

TEST(DistTopology, ErrorsNameTheVariableAndItsValue) {
  auto err = [](Environment env) { return test::error_of([&] { resolve_world(RendezvousOptions{}, env); }); };
  EXPECT_NE(err({{"RANK", "one"}, {"WORLD_SIZE", "2"}}).find("RANK=\"one\""), std::string::npos);
  EXPECT_NE(err({{"RANK", "0"}, {"WORLD_SIZE", "-2"}}).find("WORLD_SIZE=\"-2\""), std::string::npos);
  EXPECT_NE(err({{"RANK", "2"}, {"WORLD_SIZE", "2"}}).find("rank 2 (RANK) is outside a world of 2"),
            std::string::npos);
  EXPECT_NE(err({{"RANK", "0"}}).find("RANK is set but WORLD_SIZE is not"), std::string::npos);
  EXPECT_NE(err({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}).find("70000"),
            std::string::npos);
  EXPECT_NE(err({{"SLURM_PROCID", "4"}, {"SLURM_NTASKS", "4"}}).find("SLURM_PROCID"), std::string::npos);
}

TEST(DistTopology, EachRankComputesOnItsLocalGpu) {
  WorldSpec w;
  w.world_size = 4;
  w.local_rank = 3;
  EXPECT_EQ(rank_device("auto", w, true), "cuda:3");
  EXPECT_EQ(rank_device("cuda", w, true), "cuda:3");
  EXPECT_EQ(rank_device("auto", w, false), "cpu");
  EXPECT_EQ(rank_device("cpu", w, true), "cpu");
  EXPECT_EQ(rank_device("cuda:1", w, true), "cuda:1");
  w.world_size = 1;
  EXPECT_EQ(rank_device("auto", w, true), "auto");
}

}  // namespace
}  // namespace aha::dist
