// The umbrella header: everything a program that links aha usually needs.
#pragma once

#include "aha/core/build_info.h"
#include "aha/core/config.h"
#include "aha/core/error.h"
#include "aha/core/log.h"
#include "aha/io/file.h"
#include "aha/io/jsonl.h"
#include "aha/io/safetensors.h"
#include "aha/version.h"
