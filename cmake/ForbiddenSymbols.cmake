# cmake -DLIB=libibcore.a -DNM=nm -P ForbiddenSymbols.cmake
# Fails when the library calls anything that signals, spawns or opens raw sockets: the core
# never signals another process (no kill/raise/alarm), never runs netstat or lsof (no
# fork/exec/system/popen), and never probes the gateway with a bare connect() (its only
# connections are libuv's, which carry a real handshake).
set(forbidden kill killpg raise tgkill pthread_kill sigqueue signal sigaction alarm setitimer
    ualarm fork vfork clone execve execv execvp execvpe execl execlp execle system popen
    posix_spawn posix_spawnp socket connect)
execute_process(COMMAND ${NM} -u ${LIB} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} -u ${LIB} failed (${rc})")
endif()
string(REGEX MATCHALL "U [A-Za-z0-9_@.]+" undefined "${out}")
set(bad "")
foreach(u ${undefined})
  string(REGEX REPLACE "^U ([A-Za-z0-9_]+).*" "\\1" name "${u}")
  list(FIND forbidden ${name} i)
  if(NOT i EQUAL -1)
    list(APPEND bad ${name})
  endif()
endforeach()
list(LENGTH undefined n)
if(n EQUAL 0)
  message(FATAL_ERROR "no undefined symbols read from ${LIB}: is nm working?")
endif()
if(bad)
  list(REMOVE_DUPLICATES bad)
  message(FATAL_ERROR "${LIB} calls forbidden functions: ${bad}")
endif()
message(STATUS "${LIB}: ${n} undefined symbols, none forbidden")
