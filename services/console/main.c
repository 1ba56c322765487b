#include "console.h"

int main(int argc, char **argv) { return vg_svc_main(&console_service, argc, argv); }
