# SPDX-License-Identifier: LGPL-2.1-only
#
# evpl_xdr_generate(<input.x> <outbase>)
#
# Generates <outbase>.c and <outbase>.h from an XDR / RPC language file
# with xdrzcc at build time (rpc2.md §9).  A relative <input.x> is taken
# from the current source directory, a relative <outbase> in the current
# binary directory.  Compile <outbase>.c into the target that uses it and
# put <outbase>'s directory on its include path:
#
#   evpl_xdr_generate(greet.x greet_xdr)
#   add_executable(greeter greeter.c ${CMAKE_CURRENT_BINARY_DIR}/greet_xdr.c)
#   target_include_directories(greeter PRIVATE ${CMAKE_CURRENT_BINARY_DIR})
#   target_link_libraries(greeter PRIVATE evpl::evpl)   # + evpl::rpc2 for programs
#
# The generated .c includes its header by base name.  Uses this build's
# xdrzcc target, or evpl::xdrzcc from an installed package.
function(evpl_xdr_generate input outbase)
  get_filename_component(in "${input}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(NOT IS_ABSOLUTE "${outbase}")
    set(outbase "${CMAKE_CURRENT_BINARY_DIR}/${outbase}")
  endif()
  if(TARGET xdrzcc)
    set(gen xdrzcc)
    set(gen_dep xdrzcc)
  elseif(TARGET evpl::xdrzcc)
    set(gen evpl::xdrzcc)
    set(gen_dep $<TARGET_FILE:evpl::xdrzcc>) # an imported tool: depend on its file
  else()
    message(FATAL_ERROR "evpl_xdr_generate: neither xdrzcc nor evpl::xdrzcc is a target")
  endif()
  add_custom_command(
    OUTPUT "${outbase}.c" "${outbase}.h"
    COMMAND $<TARGET_FILE:${gen}> "${in}" "${outbase}.c" "${outbase}.h"
    DEPENDS ${gen_dep} "${in}"
    COMMENT "xdrzcc ${input}"
    VERBATIM)
endfunction()
