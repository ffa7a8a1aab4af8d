// See corosync.h. Callbacks of libcpg, libquorum and libvotequorum run inside their
// *_dispatch calls, which run on the JS thread when libuv reports a descriptor readable
// (uv_poll). A callback only records an event; once the dispatch returns, the recorded events
// go to JS in one call, in the order corosync gave them.
//
// Every call that waits for corosync's answer runs on the session's own thread, never on the
// JS thread: corosync's client calls wait without a timeout (CS_IPC_TIMEOUT_MS is -1), so a
// stopped or wedged corosync would otherwise stop the daemon's event loop — no health answer,
// no control socket, no log, no SIGTERM (measured: docs/membership.md, "When corosync
// hangs"). Those calls are the connection (qb_ipcc_connect, cpg_local_get, cpg_join,
// *_trackstart), votequorum_getinfo and cpg_finalize. What stays on the JS thread never
// waits: *_dispatch(CS_DISPATCH_ALL) reads what is there, cpg_mcast_joined is a one-way
// qb_ipcc_sendv (a full ring or corosync's flow control answer CS_ERR_TRY_AGAIN).
//
// Threads and handles: the session's thread opens the handles, then hands them to the JS
// thread (cpg, quorum and the tracking votequorum handle: dispatch and mcast) through the
// thread-safe function; getinfo uses a second votequorum handle that only the session's
// thread touches. Jobs run one at a time, so no handle ever sees two calls at once. close()
// never waits: the JS thread stops using the handles first, then the session's thread
// finalizes them all — at once if corosync answers, when it answers if it hangs (the thread
// is then abandoned, blocked in corosync's client library until corosync answers or dies,
// or the process exits).
#include "corosync.h"

#include <corosync/cmap.h>
#include <corosync/corotypes.h>
#include <corosync/cpg.h>
#include <corosync/quorum.h>
#include <corosync/votequorum.h>
#include <dlfcn.h>
#include <uv.h>

#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace farmlb {

namespace {

// ---- the libraries, opened on first use -------------------------------------------------

struct Library {
  const char* soname;
  const char* package;  // Debian package that ships it, for the error message
};

constexpr Library kCpg{"libcpg.so.4", "libcpg4"};
constexpr Library kQuorum{"libquorum.so.5", "libquorum5"};
constexpr Library kVotequorum{"libvotequorum.so.8", "libvotequorum8"};
constexpr Library kCmap{"libcmap.so.4", "libcmap4"};

// The entry points farmlb uses, resolved with dlsym. decltype keeps each pointer's type
// exactly the header's, so a header change is a compile error, not a crash.
struct Api {
  decltype(&::cpg_model_initialize) cpg_model_initialize;
  decltype(&::cpg_finalize) cpg_finalize;
  decltype(&::cpg_fd_get) cpg_fd_get;
  decltype(&::cpg_dispatch) cpg_dispatch;
  decltype(&::cpg_join) cpg_join;
  decltype(&::cpg_mcast_joined) cpg_mcast_joined;
  decltype(&::cpg_local_get) cpg_local_get;
  decltype(&::cpg_context_get) cpg_context_get;
  decltype(&::quorum_model_initialize) quorum_model_initialize;
  decltype(&::quorum_finalize) quorum_finalize;
  decltype(&::quorum_fd_get) quorum_fd_get;
  decltype(&::quorum_dispatch) quorum_dispatch;
  decltype(&::quorum_trackstart) quorum_trackstart;
  decltype(&::quorum_context_get) quorum_context_get;
  decltype(&::votequorum_initialize) votequorum_initialize;
  decltype(&::votequorum_finalize) votequorum_finalize;
  decltype(&::votequorum_fd_get) votequorum_fd_get;
  decltype(&::votequorum_dispatch) votequorum_dispatch;
  decltype(&::votequorum_trackstart) votequorum_trackstart;
  decltype(&::votequorum_getinfo) votequorum_getinfo;
  decltype(&::votequorum_context_get) votequorum_context_get;
  decltype(&::votequorum_context_set) votequorum_context_set;
  decltype(&::cmap_initialize) cmap_initialize;
  decltype(&::cmap_finalize) cmap_finalize;
  decltype(&::cmap_get) cmap_get;
};

[[noreturn]] void ThrowCode(Napi::Env env, const char* code, const std::string& message, int cs = 0) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  if (cs != 0) e.Set("cs", Napi::Number::New(env, cs));
  throw e;
}

const char* CsName(cs_error_t err) {
  switch (err) {
    case CS_OK: return "CS_OK";
    case CS_ERR_LIBRARY: return "CS_ERR_LIBRARY (no corosync answering on this node)";
    case CS_ERR_VERSION: return "CS_ERR_VERSION";
    case CS_ERR_INIT: return "CS_ERR_INIT";
    case CS_ERR_TIMEOUT: return "CS_ERR_TIMEOUT";
    case CS_ERR_TRY_AGAIN: return "CS_ERR_TRY_AGAIN";
    case CS_ERR_INVALID_PARAM: return "CS_ERR_INVALID_PARAM";
    case CS_ERR_NO_MEMORY: return "CS_ERR_NO_MEMORY";
    case CS_ERR_BAD_HANDLE: return "CS_ERR_BAD_HANDLE";
    case CS_ERR_ACCESS: return "CS_ERR_ACCESS (IPC refused: run as root, or add a uidgid entry)";
    case CS_ERR_NOT_EXIST: return "CS_ERR_NOT_EXIST";
    case CS_ERR_EXIST: return "CS_ERR_EXIST";
    case CS_ERR_NO_RESOURCES: return "CS_ERR_NO_RESOURCES";
    case CS_ERR_NOT_SUPPORTED: return "CS_ERR_NOT_SUPPORTED (is the quorum provider corosync_votequorum?)";
    case CS_ERR_TOO_BIG: return "CS_ERR_TOO_BIG";
    case CS_ERR_SECURITY: return "CS_ERR_SECURITY";
    default: return "cs_error";
  }
}

std::string CsText(const char* call, cs_error_t err) {
  return std::string(call) + ": " + CsName(err) + " (" + std::to_string(static_cast<int>(err)) + ")";
}

// Loaded once per process; a failure is remembered and reported to every caller.
const Api& LoadApi(Napi::Env env) {
  static Api api;
  static std::string failure;
  static bool done = false;
  if (!done) {
    done = true;
    auto open = [&](const Library& lib) -> void* {
      void* h = failure.empty() ? dlopen(lib.soname, RTLD_NOW | RTLD_LOCAL) : nullptr;
      if (!h && failure.empty()) failure = std::string(lib.soname) + " (Debian package " + lib.package + "): " + dlerror();
      return h;
    };
    void* cpg = open(kCpg);
    void* quorum = open(kQuorum);
    void* votequorum = open(kVotequorum);
    void* cmap = open(kCmap);
#define FARMLB_SYM(lib, name)                                                        \
  if (failure.empty()) {                                                             \
    api.name = reinterpret_cast<decltype(api.name)>(dlsym(lib, #name));              \
    if (!api.name) failure = std::string(#name) + " missing from " #lib " library"; \
  }
    FARMLB_SYM(cpg, cpg_model_initialize)
    FARMLB_SYM(cpg, cpg_finalize)
    FARMLB_SYM(cpg, cpg_fd_get)
    FARMLB_SYM(cpg, cpg_dispatch)
    FARMLB_SYM(cpg, cpg_join)
    FARMLB_SYM(cpg, cpg_mcast_joined)
    FARMLB_SYM(cpg, cpg_local_get)
    FARMLB_SYM(cpg, cpg_context_get)
    FARMLB_SYM(quorum, quorum_model_initialize)
    FARMLB_SYM(quorum, quorum_finalize)
    FARMLB_SYM(quorum, quorum_fd_get)
    FARMLB_SYM(quorum, quorum_dispatch)
    FARMLB_SYM(quorum, quorum_trackstart)
    FARMLB_SYM(quorum, quorum_context_get)
    FARMLB_SYM(votequorum, votequorum_initialize)
    FARMLB_SYM(votequorum, votequorum_finalize)
    FARMLB_SYM(votequorum, votequorum_fd_get)
    FARMLB_SYM(votequorum, votequorum_dispatch)
    FARMLB_SYM(votequorum, votequorum_trackstart)
    FARMLB_SYM(votequorum, votequorum_getinfo)
    FARMLB_SYM(votequorum, votequorum_context_get)
    FARMLB_SYM(votequorum, votequorum_context_set)
    FARMLB_SYM(cmap, cmap_initialize)
    FARMLB_SYM(cmap, cmap_finalize)
    FARMLB_SYM(cmap, cmap_get)
#undef FARMLB_SYM
  }
  if (!failure.empty()) ThrowCode(env, "FARMLB_E_COROSYNC_LIBRARY", failure);
  return api;
}

// Corosync answers CS_ERR_TRY_AGAIN while it synchronises a new membership (a few ms):
// calls made at start retry for a bounded time, as corosync's own tools do.
constexpr int kTryAgainRounds = 100;
constexpr long kTryAgainSleepNs = 20L * 1000 * 1000;

template <typename Fn>
cs_error_t Retry(Fn fn) {
  cs_error_t err = CS_ERR_TRY_AGAIN;
  for (int i = 0; i < kTryAgainRounds; i++) {
    err = fn();
    if (err != CS_ERR_TRY_AGAIN) break;
    struct timespec ts{0, kTryAgainSleepNs};
    nanosleep(&ts, nullptr);
  }
  return err;
}

std::string RingId(uint32_t nodeid, uint64_t seq) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%x.%llx", nodeid, static_cast<unsigned long long>(seq));
  return buf;
}

// ---- events ---------------------------------------------------------------------------

struct Member {
  uint32_t nodeid;
  uint32_t pid;
  uint32_t reason;
};

struct Event {
  enum Kind { kDeliver, kConfchg, kTotem, kQuorum, kVotequorum, kError, kOpen } kind;
  uint32_t nodeid = 0;
  uint32_t pid = 0;
  std::vector<uint8_t> data;
  std::vector<Member> members, left, joined;
  std::vector<uint32_t> ids;    // totem / quorum members
  std::vector<uint32_t> states; // votequorum node states, parallel to ids
  std::string ring;
  bool quorate = false;
  std::string call;
  std::string message;  // kError: set when not a plain "call: cs_error"
  int cs = 0;
};

std::vector<Member> Members(const struct cpg_address* list, size_t n) {
  std::vector<Member> out;
  out.reserve(n);
  for (size_t i = 0; i < n; i++) out.push_back({list[i].nodeid, list[i].pid, list[i].reason});
  return out;
}

Napi::Array MembersToJs(Napi::Env env, const std::vector<Member>& list, bool withReason) {
  Napi::Array out = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); i++) {
    Napi::Object m = Napi::Object::New(env);
    m.Set("nodeid", list[i].nodeid);
    m.Set("pid", list[i].pid);
    if (withReason) m.Set("reason", list[i].reason);
    out.Set(static_cast<uint32_t>(i), m);
  }
  return out;
}

Napi::Array IdsToJs(Napi::Env env, const std::vector<uint32_t>& ids) {
  Napi::Array out = Napi::Array::New(env, ids.size());
  for (size_t i = 0; i < ids.size(); i++) out.Set(static_cast<uint32_t>(i), ids[i]);
  return out;
}

Napi::Object EventToJs(Napi::Env env, const Event& e) {
  Napi::Object o = Napi::Object::New(env);
  switch (e.kind) {
    case Event::kDeliver:
      o.Set("type", "deliver");
      o.Set("nodeid", e.nodeid);
      o.Set("pid", e.pid);
      o.Set("data", Napi::Buffer<uint8_t>::Copy(env, e.data.data(), e.data.size()));
      break;
    case Event::kConfchg:
      o.Set("type", "confchg");
      o.Set("members", MembersToJs(env, e.members, false));
      o.Set("left", MembersToJs(env, e.left, true));
      o.Set("joined", MembersToJs(env, e.joined, true));
      break;
    case Event::kTotem:
      o.Set("type", "totem");
      o.Set("ringId", e.ring);
      o.Set("members", IdsToJs(env, e.ids));
      break;
    case Event::kQuorum:
      o.Set("type", "quorum");
      o.Set("quorate", e.quorate);
      o.Set("ringId", e.ring);
      o.Set("members", IdsToJs(env, e.ids));
      break;
    case Event::kVotequorum: {
      o.Set("type", "votequorum");
      o.Set("quorate", e.quorate);
      Napi::Array nodes = Napi::Array::New(env, e.ids.size());
      for (size_t i = 0; i < e.ids.size(); i++) {
        Napi::Object n = Napi::Object::New(env);
        n.Set("nodeid", e.ids[i]);
        n.Set("state", e.states[i]);
        nodes.Set(static_cast<uint32_t>(i), n);
      }
      o.Set("nodes", nodes);
      break;
    }
    case Event::kError:
      o.Set("type", "error");
      o.Set("call", e.call);
      o.Set("cs", e.cs);
      o.Set("message", e.message.empty() ? CsText(e.call.c_str(), static_cast<cs_error_t>(e.cs)) : e.message);
      break;
    case Event::kOpen:
      o.Set("type", "open");
      o.Set("localNodeId", e.nodeid);
      break;
  }
  return o;
}

Napi::Object InfoToJs(Napi::Env env, struct votequorum_info& vi) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("nodeId", vi.node_id);
  o.Set("votes", vi.node_votes);
  o.Set("expectedVotes", vi.node_expected_votes);
  o.Set("highestExpected", vi.highest_expected);
  o.Set("totalVotes", vi.total_votes);
  o.Set("quorum", vi.quorum);
  o.Set("quorate", (vi.flags & VOTEQUORUM_INFO_QUORATE) != 0);
  o.Set("twoNode", (vi.flags & VOTEQUORUM_INFO_TWONODE) != 0);
  o.Set("waitForAll", (vi.flags & VOTEQUORUM_INFO_WAIT_FOR_ALL) != 0);
  o.Set("qdeviceRegistered", (vi.flags & VOTEQUORUM_INFO_QDEVICE_REGISTERED) != 0);
  o.Set("qdeviceAlive", (vi.flags & VOTEQUORUM_INFO_QDEVICE_ALIVE) != 0);
  o.Set("qdeviceCastVote", (vi.flags & VOTEQUORUM_INFO_QDEVICE_CAST_VOTE) != 0);
  o.Set("qdeviceVotes", vi.qdevice_votes);
  vi.qdevice_name[VOTEQUORUM_QDEVICE_MAX_NAME_LEN - 1] = '\0';
  o.Set("qdeviceName", std::string(vi.qdevice_name));
  return o;
}

}  // namespace

// ---- the session's thread -----------------------------------------------------------------

enum Source { kCpgSource = 0, kQuorumSource = 1, kVotequorumSource = 2, kSources = 3 };

class CorosyncSession;

// One session's handles and the jobs of its thread. Shared (shared_ptr) by the session object
// and its thread: an abandoned thread may outlive the object. The handles are written by the
// thread while it connects, then used by the JS thread (cpg, quorum, votequorum: dispatch and
// mcast) from the kOpened result until close; `query` only ever by the thread.
struct Link {
  const Api* api = nullptr;
  std::string group;
  CorosyncSession* context = nullptr;  // callbacks' context; never dereferenced off the JS thread
  cpg_handle_t cpg = 0;
  quorum_handle_t quorum = 0;
  votequorum_handle_t votequorum = 0;
  votequorum_handle_t query = 0;
  bool hasCpg = false, hasQuorum = false, hasVotequorum = false, hasQuery = false;
  unsigned int localNodeId = 0;
  int fds[kSources] = {-1, -1, -1};
  // The session's callbacks (its static members), given to corosync at connect.
  cpg_deliver_fn_t cpgDeliver = nullptr;
  cpg_confchg_fn_t cpgConfchg = nullptr;
  cpg_totem_confchg_fn_t cpgTotem = nullptr;
  quorum_v1_quorum_notification_fn_t quorumNotify = nullptr;
  votequorum_quorum_notification_fn_t votequorumNotify = nullptr;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<uint32_t> infoJobs;  // getinfo calls, by id
  bool quit = false;              // close(): finalize and end

  Napi::ThreadSafeFunction tsfn;
  // The session object, while it exists (JS thread only: results for a gone session are dropped).
  CorosyncSession* session = nullptr;
};

// What the thread hands back to the JS thread.
struct Result {
  enum Kind { kOpened, kOpenFailed, kInfo, kDone } kind;
  uint32_t id = 0;
  cs_error_t err = CS_OK;
  std::string message;  // kOpenFailed
  struct votequorum_info info;
};

// The connection, on the session's thread: every step waits for corosync's answer.
bool ConnectLink(Link& l, std::string& why, cs_error_t& errOut) {
  const Api* api = l.api;
  cs_error_t err;
  auto fail = [&](const char* call, cs_error_t e) {
    why = CsText(call, e);
    errOut = e;
    return false;
  };
  cpg_model_v1_data_t cpgModel;
  std::memset(&cpgModel, 0, sizeof cpgModel);
  cpgModel.model = CPG_MODEL_V1;
  cpgModel.cpg_deliver_fn = l.cpgDeliver;
  cpgModel.cpg_confchg_fn = l.cpgConfchg;
  cpgModel.cpg_totem_confchg_fn = l.cpgTotem;
  // The current ring id at once: quorum is judged against it (src/membership/corosync/).
  cpgModel.flags = CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF;
  err = Retry([&] { return api->cpg_model_initialize(&l.cpg, CPG_MODEL_V1, reinterpret_cast<cpg_model_data_t*>(&cpgModel), l.context); });
  if (err != CS_OK) return fail("cpg_model_initialize", err);
  l.hasCpg = true;
  err = Retry([&] { return api->cpg_local_get(l.cpg, &l.localNodeId); });
  if (err != CS_OK) return fail("cpg_local_get", err);

  quorum_model_v1_data_t quorumModel;
  std::memset(&quorumModel, 0, sizeof quorumModel);
  quorumModel.model = QUORUM_MODEL_V1;
  quorumModel.quorum_notify_fn = l.quorumNotify;
  uint32_t quorumType = 0;
  err = Retry([&] { return api->quorum_model_initialize(&l.quorum, QUORUM_MODEL_V1, reinterpret_cast<quorum_model_data_t*>(&quorumModel), &quorumType, l.context); });
  if (err != CS_OK) return fail("quorum_model_initialize", err);
  l.hasQuorum = true;
  // QUORUM_FREE: no quorum provider configured; farmlb needs votequorum's answer.
  if (quorumType != QUORUM_SET) {
    why = "quorum_model_initialize: corosync has no quorum provider (set quorum { provider: corosync_votequorum })";
    errOut = CS_ERR_NOT_SUPPORTED;
    return false;
  }

  votequorum_callbacks_t vqCallbacks;
  std::memset(&vqCallbacks, 0, sizeof vqCallbacks);
  vqCallbacks.votequorum_quorum_notify_fn = l.votequorumNotify;
  err = Retry([&] { return api->votequorum_initialize(&l.votequorum, &vqCallbacks); });
  if (err != CS_OK) return fail("votequorum_initialize", err);
  l.hasVotequorum = true;
  api->votequorum_context_set(l.votequorum, l.context);
  // getinfo's own handle: the JS thread dispatches on the other one meanwhile.
  votequorum_callbacks_t none;
  std::memset(&none, 0, sizeof none);
  err = Retry([&] { return api->votequorum_initialize(&l.query, &none); });
  if (err != CS_OK) return fail("votequorum_initialize", err);
  l.hasQuery = true;

  cpg_name name;
  std::memset(&name, 0, sizeof name);
  if (l.group.empty() || l.group.size() > CPG_MAX_NAME_LENGTH) {
    why = "CPG group name must be 1.." + std::to_string(CPG_MAX_NAME_LENGTH) + " bytes";
    errOut = CS_ERR_INVALID_PARAM;
    return false;
  }
  name.length = static_cast<uint32_t>(l.group.size());
  std::memcpy(name.value, l.group.data(), l.group.size());
  err = Retry([&] { return api->cpg_join(l.cpg, &name); });
  if (err != CS_OK) return fail("cpg_join", err);

  err = Retry([&] { return api->quorum_trackstart(l.quorum, CS_TRACK_CURRENT | CS_TRACK_CHANGES); });
  if (err != CS_OK) return fail("quorum_trackstart", err);
  err = Retry([&] { return api->votequorum_trackstart(l.votequorum, 0, CS_TRACK_CURRENT | CS_TRACK_CHANGES); });
  if (err != CS_OK) return fail("votequorum_trackstart", err);

  if ((err = api->cpg_fd_get(l.cpg, &l.fds[kCpgSource])) != CS_OK) return fail("cpg_fd_get", err);
  if ((err = api->quorum_fd_get(l.quorum, &l.fds[kQuorumSource])) != CS_OK) return fail("quorum_fd_get", err);
  if ((err = api->votequorum_fd_get(l.votequorum, &l.fds[kVotequorumSource])) != CS_OK) return fail("votequorum_fd_get", err);
  return true;
}

// Leaves the group and closes every handle: cpg_finalize waits for corosync's answer.
void FinalizeLink(Link& l) {
  // Finalizing leaves the group: the other members get a confchg (reason LEAVE) at once.
  if (l.hasCpg) l.api->cpg_finalize(l.cpg);
  if (l.hasQuorum) l.api->quorum_finalize(l.quorum);
  if (l.hasVotequorum) l.api->votequorum_finalize(l.votequorum);
  if (l.hasQuery) l.api->votequorum_finalize(l.query);
  l.hasCpg = l.hasQuorum = l.hasVotequorum = l.hasQuery = false;
}

void DeliverResult(std::shared_ptr<Link> link, Result* r);

void Post(const std::shared_ptr<Link>& link, Result* r) {
  napi_status st = link->tsfn.BlockingCall(r, [link](Napi::Env env, Napi::Function, Result* res) { DeliverResult(link, res); });
  // napi_closing: the environment is going away; nobody is left to tell.
  if (st != napi_ok) delete r;
}

// The thread: connect, then getinfo calls one at a time until close, then finalize.
void RunLink(std::shared_ptr<Link> link) {
  auto* opened = new Result{Result::kOpened};
  std::string why;
  cs_error_t err = CS_OK;
  bool ok = ConnectLink(*link, why, err);
  if (!ok) {
    opened->kind = Result::kOpenFailed;
    opened->err = err;
    opened->message = why;
  }
  Post(link, opened);
  while (ok) {
    uint32_t id;
    {
      std::unique_lock<std::mutex> lock(link->mu);
      link->cv.wait(lock, [&] { return link->quit || !link->infoJobs.empty(); });
      if (link->quit) break;
      id = link->infoJobs.front();
      link->infoJobs.pop_front();
    }
    auto* r = new Result{Result::kInfo};
    r->id = id;
    std::memset(&r->info, 0, sizeof r->info);
    r->err = link->api->votequorum_getinfo(link->query, link->localNodeId, &r->info);
    Post(link, r);
  }
  if (ok) {
    // Only once the JS thread has let go of the handles (close sets quit after stopping polls).
    std::unique_lock<std::mutex> lock(link->mu);
    link->cv.wait(lock, [&] { return link->quit; });
  }
  FinalizeLink(*link);
  Post(link, new Result{Result::kDone});
  link->tsfn.Release();
}

// ---- the session ------------------------------------------------------------------------

class CorosyncSession : public Napi::ObjectWrap<CorosyncSession> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "CorosyncSession", {
      InstanceMethod<&CorosyncSession::Mcast>("mcast"),
      InstanceMethod<&CorosyncSession::VotequorumInfo>("votequorumInfo"),
      InstanceMethod<&CorosyncSession::Close>("close"),
      InstanceAccessor<&CorosyncSession::LocalNodeId>("localNodeId"),
      InstanceAccessor<&CorosyncSession::Group>("group"),
    });
  }

  explicit CorosyncSession(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CorosyncSession>(info) {}
  ~CorosyncSession() override {
    Shutdown(nullptr);
    if (link_) link_->session = nullptr;
  }

  // Starts the session's thread, which connects; the outcome comes to onEvents as an
  // "open" or an "error" event. Throws only when the thread cannot be started.
  void Open(Napi::Env env, const std::string& group, Napi::Function onEvents) {
    env_ = env;
    group_ = group;
    onEvents_ = Napi::Persistent(onEvents);
    context_ = std::make_unique<Napi::AsyncContext>(env, "farmlb:corosync");
    auto link = std::make_shared<Link>();
    link->api = &LoadApi(env);
    link->group = group;
    link->context = this;
    link->session = this;
    link->cpgDeliver = &CorosyncSession::OnDeliver;
    link->cpgConfchg = &CorosyncSession::OnConfchg;
    link->cpgTotem = &CorosyncSession::OnTotem;
    link->quorumNotify = &CorosyncSession::OnQuorum;
    link->votequorumNotify = &CorosyncSession::OnVotequorum;
    // A results queue only: the thread never calls JS itself. Unref'd: an abandoned thread
    // (corosync hung) must not keep the process alive.
    link->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "farmlb:corosync-session", 0, 1);
    link->tsfn.Unref(env);
    try {
      std::thread(RunLink, link).detach();
    } catch (const std::system_error& e) {
      link->tsfn.Release();
      ThrowCode(env, "FARMLB_E_COROSYNC_CONNECT", std::string("cannot start the session's thread: ") + e.what());
    }
    link_ = link;
    // Alive while open: the loop holds its polls, nothing in JS need hold the session.
    Ref();
    open_ = true;
  }

  // A result of the session's thread, on the JS thread.
  void OnResult(Napi::Env env, Result& r) {
    switch (r.kind) {
      case Result::kOpened: {
        if (!open_) return;  // closed while connecting: the thread finalizes
        localNodeId_ = link_->localNodeId;
        Event e{Event::kOpen};
        e.nodeid = localNodeId_;
        pending_.push_back(std::move(e));
        std::string failure = StartPolls(env);
        connected_ = failure.empty();
        if (!connected_) {
          Event f{Event::kError};
          f.call = "uv_poll";
          f.cs = CS_ERR_LIBRARY;
          f.message = failure;
          pending_.push_back(std::move(f));
        }
        Flush();
        return;
      }
      case Result::kOpenFailed: {
        if (!open_) return;
        Event e{Event::kError};
        e.call = "connect";
        e.cs = r.err;
        e.message = r.message;
        pending_.push_back(std::move(e));
        Flush();
        return;
      }
      case Result::kInfo: {
        auto it = infoCalls_.find(r.id);
        if (it == infoCalls_.end()) return;  // rejected at close
        Napi::Promise::Deferred d = it->second;
        infoCalls_.erase(it);
        Napi::HandleScope scope(env);
        if (r.err != CS_OK) {
          Napi::Error e = Napi::Error::New(env, CsText("votequorum_getinfo", r.err));
          e.Set("code", Napi::String::New(env, "FARMLB_E_COROSYNC_CALL"));
          e.Set("cs", Napi::Number::New(env, r.err));
          d.Reject(e.Value());
        } else {
          d.Resolve(InfoToJs(env, r.info));
        }
        return;
      }
      case Result::kDone: {
        threadDone_ = true;
        Napi::HandleScope scope(env);
        for (auto& d : closeCalls_) d.Resolve(Napi::Boolean::New(env, true));
        closeCalls_.clear();
        return;
      }
    }
  }

 private:
  struct Poll {
    uv_poll_t handle;
    CorosyncSession* session;
    Source source;
    bool active;
  };

  std::string StartPolls(Napi::Env env) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) return "no libuv loop";
    for (int s = 0; s < kSources; s++) {
      auto* p = new Poll{};
      p->session = this;
      p->source = static_cast<Source>(s);
      p->handle.data = p;
      int rc = uv_poll_init(loop, &p->handle, link_->fds[s]);
      if (rc != 0) {
        delete p;
        return std::string("uv_poll_init: ") + uv_strerror(rc);
      }
      polls_[s] = p;
      rc = uv_poll_start(&p->handle, UV_READABLE | UV_DISCONNECT, &CorosyncSession::OnPoll);
      if (rc != 0) return std::string("uv_poll_start: ") + uv_strerror(rc);
      p->active = true;
    }
    return "";
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* p = static_cast<Poll*>(handle->data);
    p->session->Dispatch(p, status);
  }

  void Dispatch(Poll* p, int status) {
    if (!connected_) return;
    const Api* api = link_->api;
    cs_error_t err;
    const char* call;
    switch (p->source) {
      case kCpgSource: call = "cpg_dispatch"; err = api->cpg_dispatch(link_->cpg, CS_DISPATCH_ALL); break;
      case kQuorumSource: call = "quorum_dispatch"; err = api->quorum_dispatch(link_->quorum, CS_DISPATCH_ALL); break;
      default: call = "votequorum_dispatch"; err = api->votequorum_dispatch(link_->votequorum, CS_DISPATCH_ALL); break;
    }
    // Corosync gone (POLLHUP, CS_ERR_LIBRARY) or a broken descriptor: this source is dead for
    // good. JS hears it and closes the session; a new one is opened once corosync is back.
    if ((err != CS_OK && err != CS_ERR_TRY_AGAIN) || status < 0) {
      uv_poll_stop(&p->handle);
      p->active = false;
      Event e{Event::kError};
      e.call = status < 0 ? std::string("uv_poll: ") + uv_strerror(status) : call;
      e.cs = status < 0 ? CS_ERR_LIBRARY : err;
      pending_.push_back(std::move(e));
    }
    Flush();
  }

  void Flush() {
    if (pending_.empty() || onEvents_.IsEmpty()) return;
    std::vector<Event> events;
    events.swap(pending_);
    Napi::Env env = env_;
    Napi::HandleScope scope(env);
    Napi::Array arr = Napi::Array::New(env, events.size());
    for (size_t i = 0; i < events.size(); i++) arr.Set(static_cast<uint32_t>(i), EventToJs(env, events[i]));
    try {
      onEvents_.MakeCallback(Value(), {arr}, *context_);
    } catch (const Napi::Error& e) {
      // Nothing in JS is below us to catch it: report it as node reports any uncaught error.
      napi_fatal_exception(env, e.Value());
    }
  }

  static CorosyncSession* FromCpg(cpg_handle_t handle) {
    void* ctx = nullptr;
    // The api pointer is process-wide: any session's will do to read the context.
    if (!apiForCallbacks_ || apiForCallbacks_->cpg_context_get(handle, &ctx) != CS_OK) return nullptr;
    return static_cast<CorosyncSession*>(ctx);
  }

  static void OnDeliver(cpg_handle_t handle, const struct cpg_name*, uint32_t nodeid, uint32_t pid, void* msg, size_t len) {
    CorosyncSession* s = FromCpg(handle);
    if (!s) return;
    Event e{Event::kDeliver};
    e.nodeid = nodeid;
    e.pid = pid;
    const auto* bytes = static_cast<const uint8_t*>(msg);
    e.data.assign(bytes, bytes + len);
    s->pending_.push_back(std::move(e));
  }

  static void OnConfchg(cpg_handle_t handle, const struct cpg_name*, const struct cpg_address* members, size_t nMembers,
                        const struct cpg_address* left, size_t nLeft, const struct cpg_address* joined, size_t nJoined) {
    CorosyncSession* s = FromCpg(handle);
    if (!s) return;
    Event e{Event::kConfchg};
    e.members = Members(members, nMembers);
    e.left = Members(left, nLeft);
    e.joined = Members(joined, nJoined);
    s->pending_.push_back(std::move(e));
  }

  static void OnTotem(cpg_handle_t handle, struct cpg_ring_id ring, uint32_t n, const uint32_t* members) {
    CorosyncSession* s = FromCpg(handle);
    if (!s) return;
    Event e{Event::kTotem};
    e.ring = RingId(ring.nodeid, ring.seq);
    e.ids.assign(members, members + n);
    s->pending_.push_back(std::move(e));
  }

  static void OnQuorum(quorum_handle_t handle, uint32_t quorate, struct quorum_ring_id ring, uint32_t n, const uint32_t* members) {
    const void* ctx = nullptr;
    if (!apiForCallbacks_ || apiForCallbacks_->quorum_context_get(handle, &ctx) != CS_OK || !ctx) return;
    auto* s = const_cast<CorosyncSession*>(static_cast<const CorosyncSession*>(ctx));
    Event e{Event::kQuorum};
    e.quorate = quorate != 0;
    e.ring = RingId(ring.nodeid, ring.seq);
    e.ids.assign(members, members + n);
    s->pending_.push_back(std::move(e));
  }

  static void OnVotequorum(votequorum_handle_t handle, uint64_t, uint32_t quorate, uint32_t n, votequorum_node_t nodes[]) {
    void* ctx = nullptr;
    if (!apiForCallbacks_ || apiForCallbacks_->votequorum_context_get(handle, &ctx) != CS_OK || !ctx) return;
    auto* s = static_cast<CorosyncSession*>(ctx);
    Event e{Event::kVotequorum};
    e.quorate = quorate != 0;
    for (uint32_t i = 0; i < n; i++) {
      e.ids.push_back(nodes[i].nodeid);
      e.states.push_back(nodes[i].state);
    }
    s->pending_.push_back(std::move(e));
  }

  // mcast(data) → cs_error_t (1 = CS_OK; 6 = CS_ERR_TRY_AGAIN: flow control, send again later).
  // On the JS thread: cpg_mcast_joined only writes to the request ring (qb_ipcc_sendv), it
  // waits for no answer; a stopped corosync fills the ring, then every send says TRY_AGAIN.
  Napi::Value Mcast(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!connected_) ThrowCode(env, "FARMLB_E_COROSYNC_CALL", open_ ? "cpg_mcast_joined: the session is not connected yet" : "cpg_mcast_joined: the session is closed");
    if (info.Length() < 1 || !info[0].IsBuffer()) ThrowCode(env, "FARMLB_E_COROSYNC_CALL", "mcast: data must be a Buffer");
    auto data = info[0].As<Napi::Buffer<uint8_t>>();
    struct iovec iov;
    iov.iov_base = data.Data();
    iov.iov_len = data.Length();
    // AGREED: every member delivers every message in one total order, interleaved with the
    // configuration changes the same way everywhere (virtual synchrony).
    cs_error_t err = link_->api->cpg_mcast_joined(link_->cpg, CPG_TYPE_AGREED, &iov, 1);
    return Napi::Number::New(env, err);
  }

  // votequorumInfo() → Promise<info>: asked on the session's thread, after any call before it.
  Napi::Value VotequorumInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!connected_) ThrowCode(env, "FARMLB_E_COROSYNC_CALL", open_ ? "votequorum_getinfo: the session is not connected yet" : "votequorum_getinfo: the session is closed");
    Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
    uint32_t id = ++lastInfoId_;
    infoCalls_.emplace(id, d);
    {
      std::lock_guard<std::mutex> lock(link_->mu);
      link_->infoJobs.push_back(id);
    }
    link_->cv.notify_one();
    return d.Promise();
  }

  // close() → Promise<void>, settled once the session's thread has finalized the handles
  // (at once when corosync answers; never, if it hangs until the process ends: callers bound
  // the wait). The session is closed for JS at once either way.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool wasOpen = open_;
    Shutdown(&env);
    if (wasOpen) Unref();
    Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
    if (threadDone_ || !link_) d.Resolve(env.Undefined());
    else closeCalls_.push_back(d);
    return d.Promise();
  }

  Napi::Value LocalNodeId(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), localNodeId_); }
  Napi::Value Group(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), group_); }

  // Idempotent; safe from the finalizer (env null: no JS) and from inside Flush (polls close
  // later). The JS thread lets go of the handles here, then the session's thread finalizes.
  void Shutdown(Napi::Env* env) {
    open_ = false;
    connected_ = false;
    for (auto& p : polls_) {
      if (!p) continue;
      if (p->active) uv_poll_stop(&p->handle);
      uv_close(reinterpret_cast<uv_handle_t*>(&p->handle), [](uv_handle_t* h) { delete static_cast<Poll*>(h->data); });
      p = nullptr;
    }
    if (link_) {
      {
        std::lock_guard<std::mutex> lock(link_->mu);
        link_->quit = true;
        link_->infoJobs.clear();
      }
      link_->cv.notify_one();
    }
    if (env) {
      Napi::HandleScope scope(*env);
      for (auto& [id, d] : infoCalls_) {
        Napi::Error e = Napi::Error::New(*env, "votequorum_getinfo: the session is closed");
        e.Set("code", Napi::String::New(*env, "FARMLB_E_COROSYNC_CALL"));
        d.Reject(e.Value());
      }
    }
    infoCalls_.clear();
    pending_.clear();
  }

 public:
  static const Api* apiForCallbacks_;

 private:
  std::shared_ptr<Link> link_;
  napi_env env_ = nullptr;
  std::string group_;
  Napi::FunctionReference onEvents_;
  std::unique_ptr<Napi::AsyncContext> context_;
  bool open_ = false;       // between Open and close
  bool connected_ = false;  // the thread connected and the polls run: the JS thread may use the handles
  bool threadDone_ = false;
  unsigned int localNodeId_ = 0;
  Poll* polls_[kSources] = {nullptr, nullptr, nullptr};
  std::vector<Event> pending_;
  uint32_t lastInfoId_ = 0;
  std::map<uint32_t, Napi::Promise::Deferred> infoCalls_;
  std::vector<Napi::Promise::Deferred> closeCalls_;
};

const Api* CorosyncSession::apiForCallbacks_ = nullptr;

void DeliverResult(std::shared_ptr<Link> link, Result* r) {
  std::unique_ptr<Result> owned(r);
  CorosyncSession* s = link->session;
  if (s) s->OnResult(s->Env(), *owned);
}

namespace {
Napi::FunctionReference* sessionCtor = nullptr;
}

Napi::Function DefineCorosyncSession(Napi::Env env) {
  Napi::Function ctor = CorosyncSession::Define(env);
  sessionCtor = new Napi::FunctionReference(Napi::Persistent(ctor));
  return ctor;
}

Napi::Value CorosyncOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsFunction()) {
    ThrowCode(env, "FARMLB_E_COROSYNC_CALL", "corosyncOpen(group: string, onEvents: function)");
  }
  CorosyncSession::apiForCallbacks_ = &LoadApi(env);
  Napi::Object obj = sessionCtor->New({});
  CorosyncSession* session = CorosyncSession::Unwrap(obj);
  session->Open(env, info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Function>());
  return obj;
}

// ---- configuration through cmap --------------------------------------------------------

namespace {

// A cmap value: absent, a number or a string.
struct CmapValue {
  enum Kind { kAbsent, kNumber, kString } kind = kAbsent;
  double number = 0;
  std::string text;
};

// Reads keys on the reading thread (cmap_get waits for corosync's answer).
class CmapReader {
 public:
  explicit CmapReader(const Api& api) : api_(api) {}
  ~CmapReader() { if (open_) api_.cmap_finalize(handle_); }
  CmapReader(const CmapReader&) = delete;
  CmapReader& operator=(const CmapReader&) = delete;

  cs_error_t Open() {
    cs_error_t err = Retry([&] { return api_.cmap_initialize(&handle_); });
    open_ = err == CS_OK;
    return err;
  }

  // A key's value; CS_OK with kAbsent when the key does not exist.
  cs_error_t Get(const std::string& key, CmapValue& out) {
    out = CmapValue{};
    size_t len = 0;
    cmap_value_types_t type;
    cs_error_t err = api_.cmap_get(handle_, key.c_str(), nullptr, &len, &type);
    if (err == CS_ERR_NOT_EXIST) return CS_OK;
    if (err != CS_OK) return err;
    std::vector<uint8_t> buf(len + 1, 0);
    err = api_.cmap_get(handle_, key.c_str(), buf.data(), &len, &type);
    if (err != CS_OK) return err;
    const void* v = buf.data();
    auto num = [&](double x) { out.kind = CmapValue::kNumber; out.number = x; };
    switch (type) {
      case CMAP_VALUETYPE_INT8: num(*static_cast<const int8_t*>(v)); break;
      case CMAP_VALUETYPE_UINT8: num(*static_cast<const uint8_t*>(v)); break;
      case CMAP_VALUETYPE_INT16: { int16_t x; std::memcpy(&x, v, sizeof x); num(x); break; }
      case CMAP_VALUETYPE_UINT16: { uint16_t x; std::memcpy(&x, v, sizeof x); num(x); break; }
      case CMAP_VALUETYPE_INT32: { int32_t x; std::memcpy(&x, v, sizeof x); num(x); break; }
      case CMAP_VALUETYPE_UINT32: { uint32_t x; std::memcpy(&x, v, sizeof x); num(x); break; }
      case CMAP_VALUETYPE_INT64: { int64_t x; std::memcpy(&x, v, sizeof x); num(static_cast<double>(x)); break; }
      case CMAP_VALUETYPE_UINT64: { uint64_t x; std::memcpy(&x, v, sizeof x); num(static_cast<double>(x)); break; }
      case CMAP_VALUETYPE_FLOAT: { float x; std::memcpy(&x, v, sizeof x); num(x); break; }
      case CMAP_VALUETYPE_DOUBLE: { double x; std::memcpy(&x, v, sizeof x); num(x); break; }
      case CMAP_VALUETYPE_STRING: out.kind = CmapValue::kString; out.text = reinterpret_cast<const char*>(buf.data()); break;
      default: break;
    }
    return CS_OK;
  }

 private:
  const Api& api_;
  cmap_handle_t handle_ = 0;
  bool open_ = false;
};

// Bounds the nodelist walk (corosync itself allows far fewer nodes).
constexpr unsigned kMaxNodelist = 1024;

// What the reading thread found: the values by key, or the call that failed.
struct CmapRead {
  std::map<std::string, CmapValue> values;
  unsigned nodes = 0;
  std::string failedCall;
  cs_error_t err = CS_OK;
  Napi::Promise::Deferred deferred;
  explicit CmapRead(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

const char* const kNodeKeys[] = {"ring0_addr", "nodeid", "name", "ring1_addr"};
const char* const kOtherKeys[] = {
    "totem.cluster_name", "totem.transport", "runtime.config.totem.token", "runtime.config.totem.consensus",
    "runtime.config.totem.join", "runtime.config.totem.hold", "runtime.config.totem.merge", "runtime.config.totem.downcheck",
    "quorum.provider", "quorum.two_node", "quorum.wait_for_all", "quorum.device.model", "nodelist.local_node_pos",
};

void ReadCmap(const Api& api, CmapRead& r) {
  CmapReader cmap(api);
  cs_error_t err = cmap.Open();
  if (err != CS_OK) {
    r.failedCall = "cmap_initialize";
    r.err = err;
    return;
  }
  auto get = [&](const std::string& key) {
    CmapValue v;
    cs_error_t e = cmap.Get(key, v);
    if (e != CS_OK) {
      if (r.failedCall.empty()) {
        r.failedCall = "cmap_get " + key;
        r.err = e;
      }
      return false;
    }
    if (v.kind != CmapValue::kAbsent) r.values[key] = v;
    return true;
  };
  for (unsigned i = 0; i < kMaxNodelist; i++) {
    std::string prefix = "nodelist.node." + std::to_string(i) + ".";
    for (const char* k : kNodeKeys) if (!get(prefix + k)) return;
    if (!r.values.count(prefix + "ring0_addr") && !r.values.count(prefix + "nodeid")) break;
    r.nodes = i + 1;
  }
  for (const char* k : kOtherKeys) if (!get(k)) return;
}

Napi::Value ValueToJs(Napi::Env env, const CmapRead& r, const std::string& key) {
  auto it = r.values.find(key);
  if (it == r.values.end()) return env.Undefined();
  if (it->second.kind == CmapValue::kNumber) return Napi::Number::New(env, it->second.number);
  return Napi::String::New(env, it->second.text);
}

Napi::Object ConfigToJs(Napi::Env env, const CmapRead& r) {
  auto v = [&](const std::string& key) { return ValueToJs(env, r, key); };
  Napi::Array nodes = Napi::Array::New(env);
  for (unsigned i = 0; i < r.nodes; i++) {
    std::string prefix = "nodelist.node." + std::to_string(i) + ".";
    Napi::Object n = Napi::Object::New(env);
    n.Set("nodeid", v(prefix + "nodeid"));
    n.Set("name", v(prefix + "name"));
    n.Set("ring0Addr", v(prefix + "ring0_addr"));
    n.Set("ring1Addr", v(prefix + "ring1_addr"));
    nodes.Set(i, n);
  }
  Napi::Object totem = Napi::Object::New(env);
  totem.Set("clusterName", v("totem.cluster_name"));
  totem.Set("transport", v("totem.transport"));
  // runtime.config.*: what corosync computed (token_coefficient applied, consensus derived).
  totem.Set("tokenMs", v("runtime.config.totem.token"));
  totem.Set("consensusMs", v("runtime.config.totem.consensus"));
  totem.Set("joinMs", v("runtime.config.totem.join"));
  totem.Set("holdMs", v("runtime.config.totem.hold"));
  // How soon a lone ring sees another (merge) and a downed interface is tried again
  // (downcheck): a node back from a link cut waits for both before serving alone.
  totem.Set("mergeMs", v("runtime.config.totem.merge"));
  totem.Set("downcheckMs", v("runtime.config.totem.downcheck"));
  Napi::Object quorum = Napi::Object::New(env);
  quorum.Set("provider", v("quorum.provider"));
  quorum.Set("twoNode", v("quorum.two_node"));
  quorum.Set("waitForAll", v("quorum.wait_for_all"));
  quorum.Set("deviceModel", v("quorum.device.model"));
  Napi::Object out = Napi::Object::New(env);
  out.Set("nodes", nodes);
  out.Set("localNodePos", v("nodelist.local_node_pos"));
  out.Set("totem", totem);
  out.Set("quorum", quorum);
  return out;
}

}  // namespace

// Read on a thread of its own, like the session's calls: a stopped corosync leaves the promise
// unsettled (the caller bounds the wait) and the thread abandoned to it.
Napi::Value CorosyncConfig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Api& api = LoadApi(env);
  auto* read = new CmapRead(env);
  Napi::Promise promise = read->deferred.Promise();
  Napi::ThreadSafeFunction tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "farmlb:corosync-cmap", 0, 1);
  tsfn.Unref(env);
  try {
    std::thread([tsfn, read, &api]() mutable {
      ReadCmap(api, *read);
      napi_status st = tsfn.BlockingCall(read, [](Napi::Env env, Napi::Function, CmapRead* r) {
        std::unique_ptr<CmapRead> owned(r);
        Napi::HandleScope scope(env);
        if (!r->failedCall.empty()) {
          Napi::Error e = Napi::Error::New(env, CsText(r->failedCall.c_str(), r->err));
          e.Set("code", Napi::String::New(env, r->failedCall == "cmap_initialize" ? "FARMLB_E_COROSYNC_CONNECT" : "FARMLB_E_COROSYNC_CALL"));
          e.Set("cs", Napi::Number::New(env, r->err));
          r->deferred.Reject(e.Value());
        } else {
          r->deferred.Resolve(ConfigToJs(env, *r));
        }
      });
      if (st != napi_ok) delete read;  // the environment is going away
      tsfn.Release();
    }).detach();
  } catch (const std::system_error& e) {
    tsfn.Release();
    delete read;
    ThrowCode(env, "FARMLB_E_COROSYNC_CONNECT", std::string("cannot start the cmap reading thread: ") + e.what());
  }
  return promise;
}

}  // namespace farmlb
