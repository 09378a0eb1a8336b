// luagan's C shim over Debian's Lua 5.4 (pkg-config lua5.4).
//
// Swift cannot see Lua's function-like macros or variadic functions, and must never be crossed
// by Lua's longjmp (DESIGN.md house decision 2). So this header gives:
//   - static-inline versions of the macros Swift needs (lg_pop, lg_remove, ...);
//   - an allocator that aborts when it fails while Swift runs (so `m` API functions cannot raise
//     over Swift frames) and returns NULL otherwise (Lua's catchable "not enough memory");
//   - the trampoline: every Swift binding runs inside lg_trampoline, *returns* an error code,
//     and only then, with no Swift frame left on the stack, does C call lua_error;
//   - protected helpers (lg_pnext, lg_docall) for the few operations that could raise.
#ifndef LUAGAN_CLUA_SHIM_H
#define LUAGAN_CLUA_SHIM_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// MARK: - Macros as functions

static inline int lg_registryindex(void) { return LUA_REGISTRYINDEX; }
static inline void lg_pop(lua_State *L, int n) { lua_settop(L, -(n)-1); }
static inline void lg_remove(lua_State *L, int idx) { lua_rotate(L, idx, -1); lua_settop(L, -2); }
static inline void *lg_newuserdata(lua_State *L, size_t size, int nuv) { return lua_newuserdatauv(L, size, nuv); }
static inline int lg_getuservalue(lua_State *L, int idx) { return lua_getiuservalue(L, idx, 1); }
static inline int lg_setuservalue(lua_State *L, int idx) { return lua_setiuservalue(L, idx, 1); }

// MARK: - Garbage collector (lua_gc is variadic in 5.4)

/// Tells the collector that `kb` KiB were allocated outside its heap (tensor storage), so it
/// paces itself by tensor allocation as well as by Lua allocation. Never call from a finalizer.
static inline void lg_gc_step(lua_State *L, int kb) { lua_gc(L, LUA_GCSTEP, kb); }
static inline void lg_gc_collect(lua_State *L) { lua_gc(L, LUA_GCCOLLECT, 0); }
static inline int lg_gc_count_kb(lua_State *L) { return lua_gc(L, LUA_GCCOUNT, 0); }

// MARK: - The allocator: catchable out-of-memory in Lua, abort under Swift

/// Per-state host context, reached through the allocator's user data and the state's extra
/// space (which every coroutine inherits from the main thread): the Swift dispatcher, the
/// collector's pacing state, and the Lua heap's accounting.
typedef int (*lg_Dispatch)(lua_State *L, int id);
typedef struct lg_Context {
  lg_Dispatch dispatch;
  long long gcCarry;    /* tensor bytes allocated but not yet reported to the collector */
  long long softLimit;  /* live tensor bytes that trigger a full collection (a backstop) */
  long long sinceCollect; /* tensor bytes allocated since the last full collection */
  size_t heapBytes;     /* bytes the Lua heap holds now */
  size_t heapLimit;     /* past this, an allocation fails (a "not enough memory" Lua error) */
  int inSwift;          /* 1 while a Swift frame is on the C stack above the innermost pcall */
} lg_Context;

/// While Swift runs (inSwift), an allocation that fails aborts the process: a Lua memory error
/// raised then would longjmp over Swift frames (DESIGN.md house decision 2). Otherwise (Lua code, or a
/// protected call Swift made) a request past the heap limit, or one the system refuses, returns
/// NULL and Lua raises its catchable "not enough memory". Shrinking never fails.
static inline void *lg_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  lg_Context *ctx = (lg_Context *)ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) { free(ptr); ctx->heapBytes -= old; return NULL; }
  if (nsize > old && !ctx->inSwift && (nsize - old > ctx->heapLimit || ctx->heapBytes + (nsize - old) > ctx->heapLimit)) return NULL;
  void *p = realloc(ptr, nsize);
  if (p == NULL) {
    if (nsize <= old) return ptr;  /* a failed shrink keeps the block (Lua assumes it cannot fail) */
    if (!ctx->inSwift) return NULL;
    fputs("luagan: out of memory in the Lua heap while Swift code runs\n", stderr);
    abort();
  }
  ctx->heapBytes = ctx->heapBytes - old + nsize;
  return p;
}
static inline int lg_panic(lua_State *L) {
  const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(non-string error)";
  fprintf(stderr, "luagan: unprotected Lua error: %s\n", msg);
  abort();
  return 0;
}
static inline lg_Context *lg_context(lua_State *L) { return *(lg_Context **)lua_getextraspace(L); }
static inline lua_State *lg_newstate(lg_Context *ctx) {
  ctx->inSwift = 1;
  lua_State *L = lua_newstate(lg_alloc, ctx);
  if (L) {
    lua_atpanic(L, lg_panic);
    *(lg_Context **)lua_getextraspace(L) = ctx;
  }
  return L;
}

// MARK: - The trampoline

/// A Swift binding body returns the number of results, or LG_ERROR with the message on top.
enum { LG_ERROR = -1 };
/// Stack slots every binding may use without asking (lua_checkstack); bodies that push a
/// data-dependent number of values reserve more themselves.
enum { LG_MINSTACK = 64 };

/// Pushes "chunk:line: " for the innermost frame outside luagan's own Lua code (chunks named
/// "=[luagan] ..."), so an error inside nn.Module:loadStateDict points at the script's line.
static inline void lg_where(lua_State *L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0 && strncmp(ar.source, "=[luagan]", 9) != 0) {
      lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
      return;
    }
  }
  lua_pushliteral(L, "");
}

/// The one C function behind every Swift binding. Upvalue 1 is the binding's id.
static inline int lg_trampoline(lua_State *L) {
  int id = (int)lua_tointeger(L, lua_upvalueindex(1));
  if (!lua_checkstack(L, LG_MINSTACK)) return luaL_error(L, "stack overflow (a Lua stack too deep to call into luagan)");
  lg_Context *ctx = lg_context(L);
  int saved = ctx->inSwift;
  ctx->inSwift = 1;
  int n = ctx->dispatch(L, id);  // Swift runs and returns: no Swift frame is left after this
  ctx->inSwift = saved;
  if (n == LG_ERROR) {           // message on top: prefix "chunk:line:" as luaL_error does
    lg_where(L);
    lua_rotate(L, -2, 1);
    lua_concat(L, 2);
    return lua_error(L);
  }
  return n;
}
static inline void lg_pushbinding(lua_State *L, int id) {
  lua_pushinteger(L, id);
  lua_pushcclosure(L, lg_trampoline, 1);
}

/// __index for userdata: upvalue 1 is the method table, looked up first (the fast path for
/// `t:method()`); anything else goes to the fallback in upvalue 2 (numeric indices, fields).
static inline int lg_index(lua_State *L) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    lua_settop(L, 2);
  }
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_rotate(L, 1, 1);
  lua_call(L, 2, 1);
  return 1;
}
/// Pushes lg_index closed over the method table and fallback on top of the stack.
static inline void lg_pushindex(lua_State *L) { lua_pushcclosure(L, lg_index, 2); }

/// __index for module userdata: the instance's own fields (its user value table), then its
/// class (field __class of that table, inheritance through the class's own metatable), then
/// the fallback in upvalue 1 (parameters, buffers and children registered on the Swift side).
static inline int lg_module_index(lua_State *L) {
  lua_settop(L, 2);  // a script may call this function itself, with anything
  if (lua_type(L, 1) == LUA_TUSERDATA && lua_getiuservalue(L, 1, 1) == LUA_TTABLE) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, 3) != LUA_TNIL) return 1;
    lua_settop(L, 3);
    lua_pushliteral(L, "__class");
    if (lua_rawget(L, 3) == LUA_TTABLE) {
      lua_pushvalue(L, 2);
      if (lua_gettable(L, 4) != LUA_TNIL) return 1;
    }
  }
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_rotate(L, 1, 1);
  lua_call(L, 2, 1);
  return 1;
}
/// Pushes lg_module_index closed over the fallback on top of the stack.
static inline void lg_pushmoduleindex(lua_State *L) { lua_pushcclosure(L, lg_module_index, 1); }

/// Frame information for luaL_argerror-style messages: the name the function was called by,
/// and whether it was called as a method (then argument 1 is self).
static inline const char *lg_callname(lua_State *L, int *isMethod) {
  lua_Debug ar;
  *isMethod = 0;
  if (!lua_getstack(L, 0, &ar)) return NULL;
  lua_getinfo(L, "n", &ar);
  if (ar.namewhat && strcmp(ar.namewhat, "method") == 0) *isMethod = 1;
  return ar.name;
}

// MARK: - Protected helpers (Swift calls Lua only through these)

/// lua_next is `v` (it raises on an invalid key), and the interrupt hook may raise during any
/// call: run it under lua_pcall so Swift never sees a longjmp. Stack in: table at t, key on
/// top. Out: key, value (returns 1); nothing (returns 0) at the end; the error value (returns
/// -1) on an error, which the caller must raise: a walk cut short is never taken for the end.
static inline int lg_next_body(lua_State *L) {
  // 1: table, 2: key
  if (lua_next(L, 1)) return 2;
  return 0;
}
static inline int lg_pcallk(lua_State *L, int narg, int nres, int msgh) {
  lg_Context *ctx = lg_context(L);
  int saved = ctx->inSwift;
  ctx->inSwift = 0;  // no Swift frame between here and the protected call's handler
  int status = lua_pcall(L, narg, nres, msgh);
  ctx->inSwift = saved;
  return status;
}
static inline int lg_pnext(lua_State *L, int t) {
  t = lua_absindex(L, t);
  lua_pushcfunction(L, lg_next_body);
  lua_pushvalue(L, t);
  lua_rotate(L, -3, -1);              // fn, table, key
  if (lg_pcallk(L, 2, 2, 0) != LUA_OK) return -1;  // the error value is on top
  if (lua_type(L, -2) == LUA_TNIL) { lua_settop(L, -3); return 0; }
  return 1;
}

/// The message handler of lua.c: add a traceback to string errors.
static inline int lg_msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/// Calls the function below `narg` arguments with a traceback handler (lua.c's docall).
static inline int lg_docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, lg_msghandler);
  lua_rotate(L, base, 1);
  int status = lg_pcallk(L, narg, nres, base);
  lua_rotate(L, base, -1);
  lua_settop(L, -2);
  return status;
}

/// Calls without a handler (errors come back as values, for rethrow from bindings).
static inline int lg_pcall(lua_State *L, int narg, int nres) { return lg_pcallk(L, narg, nres, 0); }

// MARK: - Ctrl-C: stop the script at the next Lua instruction, as lua.c does

static lua_State *lg_sigstate = NULL;
// A training run asks for graceful interrupts: the first Ctrl-C only sets a flag, which the
// run reads between steps (it then saves a checkpoint and stops); the second stops at once.
static volatile sig_atomic_t lg_graceful = 0, lg_interrupt_requested = 0;
static inline void lg_stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}
static inline void lg_on_sigint(int sig) {
  if (lg_graceful && !lg_interrupt_requested) {   // the first of a run: noted, the step goes on
    lg_interrupt_requested = 1;
    signal(sig, lg_on_sigint);
    return;
  }
  signal(sig, SIG_DFL);  // the next Ctrl-C kills the process
  if (lg_sigstate) lua_sethook(lg_sigstate, lg_stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}
static inline void lg_set_graceful_interrupts(int on) { lg_graceful = on; if (!on) lg_interrupt_requested = 0; }
static inline int lg_interrupt_was_requested(void) { return lg_interrupt_requested; }
static inline void lg_catch_sigint(lua_State *L) { lg_sigstate = L; signal(SIGINT, lg_on_sigint); }
static inline void lg_release_sigint(void) { signal(SIGINT, SIG_DFL); lg_sigstate = NULL; }

#endif
