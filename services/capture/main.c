#include "capture.h"

int main(int argc, char **argv) { return vg_svc_main(&capture_service, argc, argv); }
