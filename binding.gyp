{
  "targets": [
    {
      "target_name": "farmlb_native",
      "sources": [
        "native/addon.cc",
        "native/abi.cc",
        "native/common.cc",
        "native/corosync.cc",
        "native/map.cc",
        "native/object.cc",
        "native/rawsock.cc",
        "native/sdnotify.cc",
        "native/sockdiag.cc",
        "native/tc.cc",
        "native/udpbatch.cc",
        "native/xdp.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "bpf"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "libraries": ["-lbpf", "-lelf", "-lz", "-ldl"]
    }
  ]
}
