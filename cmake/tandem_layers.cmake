# The layers of libtandem, lowest first. Each unit is one OBJECT library compiled against an
# include root that holds only its own folders and those of lower levels (symbolic links under
# build/layers/<unit>/tandem/), so an #include of a higher layer, or of a sibling system, is
# a compile error ("No such file"), not a review comment.
#
#   level 0  core         registry, config, runtime, files, hashing, formats/ (safetensors, GGUF)
#   level 1  text         tokenizers, chat templates
#   level 2  models       CausalLM per architecture, KV cache, generate() and policies, loader
#   level 3  data         one reader per dataset (data/), metrics (eval/)
#   level 4  train        the Trainer
#   level 5  peft         device-side adapters (SPA plugin, LST ladder, SSF) and their state cache
#   level 6  spa collab fed       three paper systems; none includes another
#   level 7  moe          Symbolic-MoE, whose plugin experts are SPA's SideAdaptedLM
#   level 8  experiments  registered recipes
set(TANDEM_UNITS core text models data train peft spa collab fed moe experiments)
set(TANDEM_UNIT_core_LEVEL 0)
set(TANDEM_UNIT_core_DIRS core)
set(TANDEM_UNIT_text_LEVEL 1)
set(TANDEM_UNIT_text_DIRS text)
set(TANDEM_UNIT_models_LEVEL 2)
set(TANDEM_UNIT_models_DIRS models)
set(TANDEM_UNIT_data_LEVEL 3)
set(TANDEM_UNIT_data_DIRS data eval)
set(TANDEM_UNIT_train_LEVEL 4)
set(TANDEM_UNIT_train_DIRS train)
set(TANDEM_UNIT_peft_LEVEL 5)
set(TANDEM_UNIT_peft_DIRS peft)
foreach(system spa collab fed)
  set(TANDEM_UNIT_${system}_LEVEL 6)
  set(TANDEM_UNIT_${system}_DIRS ${system})
endforeach()
set(TANDEM_UNIT_moe_LEVEL 7)
set(TANDEM_UNIT_moe_DIRS moe)
set(TANDEM_UNIT_experiments_LEVEL 8)
set(TANDEM_UNIT_experiments_DIRS experiments)

# Folders under csrc/tandem that no unit claims are an error: every file has a layer.
file(GLOB _tandem_folders LIST_DIRECTORIES true RELATIVE ${CMAKE_CURRENT_SOURCE_DIR}/csrc/tandem
     ${CMAKE_CURRENT_SOURCE_DIR}/csrc/tandem/*)
set(_claimed)
foreach(unit ${TANDEM_UNITS})
  list(APPEND _claimed ${TANDEM_UNIT_${unit}_DIRS})
endforeach()
foreach(folder ${_tandem_folders})
  if(IS_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/csrc/tandem/${folder} AND NOT folder IN_LIST _claimed)
    message(FATAL_ERROR "csrc/tandem/${folder}/ belongs to no layer: add it to cmake/tandem_layers.cmake")
  endif()
endforeach()

# tandem_add_layers(<out-var>): creates tandem_<unit> OBJECT libraries; <out-var> lists them.
function(tandem_add_layers out)
  set(made)
  foreach(unit ${TANDEM_UNITS})
    set(root ${CMAKE_BINARY_DIR}/layers/${unit})
    file(REMOVE_RECURSE ${root})
    file(MAKE_DIRECTORY ${root}/tandem)
    set(sources)
    foreach(other ${TANDEM_UNITS})
      if(other STREQUAL unit OR TANDEM_UNIT_${other}_LEVEL LESS TANDEM_UNIT_${unit}_LEVEL)
        foreach(dir ${TANDEM_UNIT_${other}_DIRS})
          file(CREATE_LINK ${CMAKE_CURRENT_SOURCE_DIR}/csrc/tandem/${dir} ${root}/tandem/${dir} SYMBOLIC)
        endforeach()
      endif()
    endforeach()
    foreach(dir ${TANDEM_UNIT_${unit}_DIRS})
      file(GLOB_RECURSE dir_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/csrc/tandem/${dir}/*.cpp)
      list(APPEND sources ${dir_sources})
    endforeach()
    add_library(tandem_${unit} OBJECT ${sources})
    if(TANDEM_UNITY_BUILD)
      set_target_properties(tandem_${unit} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 8)
    endif()
    target_include_directories(tandem_${unit} PRIVATE ${root})
    target_link_libraries(tandem_${unit} PUBLIC ${TORCH_LIBRARIES} yaml-cpp nlohmann_json::nlohmann_json Threads::Threads)
    target_compile_options(tandem_${unit} PRIVATE -Wall -Wextra -Wno-unused-parameter)
    if(TANDEM_PCH)
      if(unit STREQUAL "core")
        target_precompile_headers(tandem_core PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/csrc/tandem/core/pch.h)
      else()
        target_precompile_headers(tandem_${unit} REUSE_FROM tandem_core)
      endif()
    endif()
    list(APPEND made tandem_${unit})
  endforeach()
  set(${out} ${made} PARENT_SCOPE)
endfunction()
